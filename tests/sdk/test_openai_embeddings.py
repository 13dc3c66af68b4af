"""The official `openai` Python SDK's embeddings (`client.embeddings`) against the gateway.

Each test states one thing a client application relies on (PROTOCOL.md §13). The SDK asks for
`encoding_format: "base64"` whenever its caller does not choose, and decodes the strings back
to floats; the gateway must answer in the encoding asked for, whoever serves it. `demo-embed`
is the mock (deterministic unit vectors, 1536 dimensions unless `dimensions` says);
`fake-embed` an OpenAI-compatible upstream that writes floats whatever it is asked;
`demo-embed-cached` the mock behind the memory cache (conftest's `cached_gateway`).
"""

from __future__ import annotations

import base64
import json
import math
import struct

import openai
import pytest
from openai.types import CreateEmbeddingResponse

from conftest import CLIENT_KEY, CLIENT_TIMEOUT_S, FAKE_EMBEDDING, UPSTREAM_KEY

TEXT = "A gateway keeps applications simple"
TEXTS = ["The cat sat on the mat", "Retries need budgets", "The cat sat on the mat"]
MOCK_DIMENSIONS = 1536


def norm(vector: list[float]) -> float:
    return math.sqrt(math.fsum(x * x for x in vector))


def as_float32(vector: list[float]) -> list[float]:
    """The values as float32 holds them (what a base64 answer carries)."""
    return list(struct.unpack(f"<{len(vector)}f", struct.pack(f"<{len(vector)}f", *vector)))


def wire_embeddings(raw) -> list:
    """The `embedding` of each item as it came over the wire (before the SDK decoded it)."""
    return [item["embedding"] for item in json.loads(raw.http_response.content)["data"]]


def sent_body(raw) -> dict:
    return json.loads(raw.http_request.content)


# --------------------------------------------------------------------------------------------
# The mock's embeddings
# --------------------------------------------------------------------------------------------


def test_the_default_encoding_is_base64_and_decodes_to_1536_floats_of_unit_norm(client):
    raw = client.embeddings.with_raw_response.create(model="demo-embed", input=TEXT)
    response = raw.parse()

    [on_wire] = wire_embeddings(raw)
    assert isinstance(on_wire, str), "the gateway answered the base64 the SDK asked for"
    assert len(base64.b64decode(on_wire)) == 4 * MOCK_DIMENSIONS

    assert isinstance(response, CreateEmbeddingResponse)
    assert response.object == "list"
    assert [item.index for item in response.data] == [0]
    assert response.data[0].object == "embedding"
    vector = response.data[0].embedding
    assert isinstance(vector, list) and all(isinstance(x, float) for x in vector)
    assert len(vector) == MOCK_DIMENSIONS
    assert norm(vector) == pytest.approx(1.0, abs=1e-5)
    assert response.usage.prompt_tokens > 0
    assert response.usage.total_tokens == response.usage.prompt_tokens

    assert raw.headers.get("x-ballast-provider") == "mock"
    assert raw.headers.get("x-ballast-route") == "primary"
    assert raw.headers.get("x-ballast-cache") == "off"
    assert raw.request_id


def test_the_sdk_asks_for_base64_when_the_caller_does_not_choose(client):
    raw = client.embeddings.with_raw_response.create(model="demo-embed", input=TEXT)

    assert sent_body(raw)["encoding_format"] == "base64"


def test_an_explicit_float_encoding_gives_the_same_vector_as_json_numbers(client):
    decoded = client.embeddings.create(model="demo-embed", input=TEXT).data[0].embedding
    raw = client.embeddings.with_raw_response.create(
        model="demo-embed", input=TEXT, encoding_format="float"
    )

    assert sent_body(raw)["encoding_format"] == "float"
    [on_wire] = wire_embeddings(raw)
    assert isinstance(on_wire, list) and len(on_wire) == MOCK_DIMENSIONS
    floats = raw.parse().data[0].embedding
    assert as_float32(floats) == decoded, "the same float32 vector in either encoding"
    assert norm(floats) == pytest.approx(1.0, abs=1e-5)


def test_an_explicit_base64_encoding_is_left_to_the_caller_to_decode(client):
    response = client.embeddings.create(model="demo-embed", input=TEXT, encoding_format="base64")
    decoded = client.embeddings.create(model="demo-embed", input=TEXT).data[0].embedding

    encoded = response.data[0].embedding
    assert isinstance(encoded, str)
    raw = base64.b64decode(encoded)
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == decoded


def test_dimensions_shortens_the_vector_to_a_unit_vector_in_the_same_direction(client):
    full = client.embeddings.create(model="demo-embed", input=TEXT).data[0].embedding
    short = client.embeddings.create(model="demo-embed", input=TEXT, dimensions=64).data[0].embedding

    assert len(short) == 64
    assert norm(short) == pytest.approx(1.0, abs=1e-5)
    # As text-embedding-3 shortens: the first entries of the full vector, normalised again.
    head = full[:64]
    scale = norm(head)
    assert short == pytest.approx([x / scale for x in head], abs=1e-6)


def test_a_list_of_inputs_gives_one_embedding_each_in_order(client):
    response = client.embeddings.create(model="demo-embed", input=TEXTS)
    alone = client.embeddings.create(model="demo-embed", input=TEXTS[1]).data[0].embedding

    assert [item.index for item in response.data] == [0, 1, 2]
    vectors = [item.embedding for item in response.data]
    assert all(len(v) == MOCK_DIMENSIONS for v in vectors)
    assert vectors[0] == vectors[2], "equal texts embed equally"
    assert vectors[0] != vectors[1], "different texts do not"
    assert vectors[1] == alone, "an input embeds the same alone or in a list"
    each = [client.embeddings.create(model="demo-embed", input=t).usage.prompt_tokens for t in TEXTS]
    assert response.usage.prompt_tokens == sum(each)


def test_token_arrays_are_embedded_too(client):
    response = client.embeddings.create(model="demo-embed", input=[[1, 2, 3], [4, 5]])

    assert [item.index for item in response.data] == [0, 1]
    assert all(norm(item.embedding) == pytest.approx(1.0, abs=1e-5) for item in response.data)
    assert response.usage.prompt_tokens == 5


def test_an_empty_input_raises_bad_request(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="demo-embed", input="")

    assert caught.value.param == "input"
    assert caught.value.type == "invalid_request_error"


def test_a_model_whose_targets_cannot_embed_raises_bad_request(counting_client):
    with pytest.raises(openai.BadRequestError) as caught:
        counting_client.sdk.embeddings.create(model="anth-ok", input=TEXT)

    assert caught.value.param == "model"
    assert len(counting_client.sent) == 1, "a 400 is never retried"


def test_an_unknown_model_raises_not_found(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.embeddings.create(model="no-such-model", input=TEXT)

    assert caught.value.code == "model_not_found"


# --------------------------------------------------------------------------------------------
# An OpenAI-compatible upstream that only writes floats
# --------------------------------------------------------------------------------------------


def test_an_upstream_that_ignores_base64_is_converted_for_the_sdk(client, fake_upstream):
    before = len(fake_upstream.seen("embed-floats"))
    raw = client.embeddings.with_raw_response.create(model="fake-embed", input=["a", "b"])

    seen = fake_upstream.seen("embed-floats")[before:]
    assert len(seen) == 1
    assert seen[0].path == "/embed-floats/v1/embeddings"
    assert seen[0].headers.get("authorization") == f"Bearer {UPSTREAM_KEY}"
    assert seen[0].body == {
        "model": "upstream-model-embed",
        "input": ["a", "b"],
        "encoding_format": "base64",
    }
    assert all(isinstance(e, str) for e in wire_embeddings(raw)), "converted to base64"
    response = raw.parse()
    assert [item.embedding for item in response.data] == [as_float32(list(FAKE_EMBEDDING))] * 2
    assert raw.headers.get("x-ballast-provider") == "upstream-embed"


def test_an_upstreams_floats_pass_through_when_floats_are_asked(client):
    response = client.embeddings.create(model="fake-embed", input="a", encoding_format="float")

    assert response.data[0].embedding == list(FAKE_EMBEDDING)
    assert response.usage.prompt_tokens == 2


# --------------------------------------------------------------------------------------------
# Cached
# --------------------------------------------------------------------------------------------


def test_a_second_identical_call_is_a_cache_hit_with_the_same_vectors(cached_gateway):
    with openai.OpenAI(
        base_url=cached_gateway.base_url, api_key=CLIENT_KEY, max_retries=0,
        timeout=CLIENT_TIMEOUT_S,
    ) as client:
        question = ["Embed me once", "and me too"]
        first = client.embeddings.with_raw_response.create(model="demo-embed-cached", input=question)
        second = client.embeddings.with_raw_response.create(model="demo-embed-cached", input=question)
        floats = client.embeddings.create(
            model="demo-embed-cached", input=question, encoding_format="float"
        )

    assert first.headers.get("x-ballast-cache") == "miss"
    assert second.headers.get("x-ballast-cache") == "hit"
    assert second.headers.get("x-ballast-route") == "cache"
    vectors = [item.embedding for item in first.parse().data]
    assert [item.embedding for item in second.parse().data] == vectors
    assert second.parse().usage == first.parse().usage
    # Whether or not it came from the cache, a float answer is floats.
    assert [as_float32(item.embedding) for item in floats.data] == vectors
