"""The OpenAI Agents SDK (`openai-agents`), unmodified, with the gateway as its OpenAI.

An `Agent` with one `@function_tool` runs against the mock (`demo-fast`), which calls the tool
when it is offered one and the last turn is the user's, and answers the tool's output in text.
The agent's model is an `OpenAIResponsesModel` (or `OpenAIChatCompletionsModel`) on an
`AsyncOpenAI` client pointed at the gateway; tracing is off, so nothing leaves loopback. Every
run is bounded by RUN_TIMEOUT_S and `max_turns`.
"""

from __future__ import annotations

import asyncio

import openai
import pytest
from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from agents.items import MessageOutputItem, ToolCallItem, ToolCallOutputItem
from openai.types.responses import ResponseTextDeltaEvent

from conftest import CLIENT_KEY, CLIENT_TIMEOUT_S

RUN_TIMEOUT_S = 60.0
QUESTION = "What is the weather like in Paris today?"
# What the mock writes for a string argument: the first five words of the last user turn.
CITY = " ".join(QUESTION.split()[:5])


@pytest.fixture(autouse=True)
def no_tracing():
    """The Agents SDK exports traces to api.openai.com unless told not to."""
    set_tracing_disabled(True)
    yield


class WeatherTool:
    """A `get_weather` function tool that records every call the agent makes to it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

        @function_tool
        def get_weather(city: str) -> str:
            """The weather for a city."""
            self.calls.append(city)
            return f"Sunny and 21 degrees in {city}"

        self.tool = get_weather


def run(gateway, body):
    """`await body(client)` on an AsyncOpenAI client for `gateway`, in a fresh event loop,
    bounded by RUN_TIMEOUT_S; the client is closed before the loop is."""

    async def main():
        client = openai.AsyncOpenAI(
            base_url=gateway.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=CLIENT_TIMEOUT_S
        )
        try:
            return await asyncio.wait_for(body(client), RUN_TIMEOUT_S)
        finally:
            await client.close()

    return asyncio.run(main())


def weather_agent(client, weather: WeatherTool, model_class=OpenAIResponsesModel) -> Agent:
    return Agent(
        name="Weather assistant",
        instructions="Answer with the weather tool.",
        tools=[weather.tool],
        model=model_class(model="demo-fast", openai_client=client),
    )


def test_an_agent_calls_its_function_tool_and_answers_in_text(gateway):
    weather = WeatherTool()

    result = run(gateway, lambda client: Runner.run(
        weather_agent(client, weather), QUESTION, max_turns=4
    ))

    assert weather.calls == [CITY], "the tool's Python function ran once, on the model's argument"
    assert [type(item) for item in result.new_items] == [
        ToolCallItem, ToolCallOutputItem, MessageOutputItem
    ]
    assert isinstance(result.final_output, str)
    assert result.final_output.startswith(f"Thanks, the tool said: Sunny and 21 degrees in {CITY}")
    assert result.last_response_id.startswith("resp_")
    usage = result.context_wrapper.usage
    assert usage.requests == 2 and usage.input_tokens > 0 and usage.output_tokens > 0


def test_a_streamed_agent_run_calls_the_tool_and_streams_its_answer(gateway):
    weather = WeatherTool()

    async def body(client):
        streamed = Runner.run_streamed(weather_agent(client, weather), QUESTION, max_turns=4)
        deltas, kinds = [], []
        async for event in streamed.stream_events():
            kinds.append(event.type)
            if event.type == "raw_response_event" and isinstance(event.data, ResponseTextDeltaEvent):
                deltas.append(event.data.delta)
            assert len(kinds) < 10_000, "the run does not end"
        return streamed, deltas, kinds

    streamed, deltas, kinds = run(gateway, body)

    assert weather.calls == [CITY]
    assert {"raw_response_event", "run_item_stream_event"} <= set(kinds)
    assert streamed.is_complete
    assert streamed.final_output.startswith("Thanks, the tool said: Sunny and 21 degrees")
    assert "".join(deltas) == streamed.final_output


def test_an_agent_continues_its_run_on_the_gateways_kept_conversation(kept_gateway):
    weather = WeatherTool()

    async def body(client):
        agent = weather_agent(client, weather)
        # Each turn after the first sends only its new items, with the previous response's id.
        first = await Runner.run(agent, QUESTION, max_turns=4, auto_previous_response_id=True)
        second = await Runner.run(
            agent, "And tomorrow?", previous_response_id=first.last_response_id, max_turns=4
        )
        return first, second

    first, second = run(kept_gateway, body)

    assert weather.calls == [CITY, "And tomorrow?"]
    assert first.final_output.startswith("Thanks, the tool said:")
    assert second.final_output.startswith("Thanks, the tool said:")
    assert second.last_response_id not in (None, first.last_response_id)


def test_an_agent_on_the_chat_completions_model_works_too(gateway):
    weather = WeatherTool()

    result = run(gateway, lambda client: Runner.run(
        weather_agent(client, weather, OpenAIChatCompletionsModel), QUESTION, max_turns=4
    ))

    assert weather.calls == [CITY]
    assert result.final_output.startswith("Thanks, the tool said: Sunny and 21 degrees")
