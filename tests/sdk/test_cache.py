"""The official SDK against cached answers: a replayed stream parses like a live one."""

import openai

MESSAGES = [{"role": "user", "content": "Tell me about caching"}]


def _client(gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key="client-key", max_retries=0, timeout=20)


def test_a_replayed_stream_parses_like_the_live_one(cached_gateway):
    client = _client(cached_gateway)

    live = client.chat.completions.with_raw_response.create(
        model="demo-cached", messages=MESSAGES, stream=True
    )
    assert live.headers.get("x-ballast-cache") == "miss"
    live_text = "".join(c.choices[0].delta.content or "" for c in live.parse() if c.choices)

    replay = client.chat.completions.with_raw_response.create(
        model="demo-cached", messages=MESSAGES, stream=True
    )
    assert replay.headers.get("x-ballast-cache") == "hit"
    assert replay.headers.get("x-ballast-route") == "cache"
    chunks = list(replay.parse())
    replay_text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    assert replay_text == live_text
    assert len(chunks) > 3, "replayed chunk by chunk"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_a_cached_stream_answers_a_whole_request_and_back(cached_gateway):
    client = _client(cached_gateway)
    question = [{"role": "user", "content": "A question asked first as a stream"}]
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(model="demo-cached", messages=question, stream=True)
        if c.choices
    )

    whole = client.chat.completions.with_raw_response.create(model="demo-cached", messages=question)

    assert whole.headers.get("x-ballast-cache") == "hit"
    assert whole.parse().choices[0].message.content == streamed


def test_the_usage_chunk_of_a_replay_comes_only_when_asked(cached_gateway):
    client = _client(cached_gateway)
    question = [{"role": "user", "content": "Usage please"}]
    whole = client.chat.completions.create(model="demo-cached", messages=question)

    chunks = list(
        client.chat.completions.create(
            model="demo-cached", messages=question, stream=True,
            stream_options={"include_usage": True},
        )
    )

    assert chunks[-1].choices == []
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens
