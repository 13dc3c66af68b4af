"""The official `anthropic` Python SDK, unmodified, pointed at the real gateway binary.

The model list (one list both SDKs parse, SPEC §3). `/v1/messages` and its `count_tokens` are in
test_anthropic_messages.py.
"""

from __future__ import annotations

import anthropic

from conftest import CLIENT_KEY, CONFIGURED_MODELS


def anthropic_client(gateway) -> anthropic.Anthropic:
    # The Anthropic SDK's base URL has no `/v1`: it adds it to every path itself.
    return anthropic.Anthropic(
        base_url=f"http://{gateway.addr}", api_key=CLIENT_KEY, max_retries=0
    )


def test_models_list_works_from_the_anthropic_sdk_too(gateway):
    models = list(anthropic_client(gateway).models.list())
    assert sorted(m.id for m in models) == sorted(CONFIGURED_MODELS)
    assert all(m.type == "model" and m.display_name == m.id for m in models)
    assert all(m.created_at.year >= 2024 for m in models)
