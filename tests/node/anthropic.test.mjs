// The official `@anthropic-ai/sdk` Node SDK, unmodified, against the real gateway binary
// (gateway.mjs): the model list and the Messages API (`/v1/messages`, translated to chat
// completions for the mock and OpenAI-compatible targets).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import Anthropic from '@anthropic-ai/sdk';

import {
  CLIENT_KEY,
  CLIENT_TIMEOUT_MS,
  CONFIGURED_MODELS,
  FAKE_TOOL_CALL,
  LIMITED_KEY,
  countingFetch,
  gatewayConfig,
  startGateway,
  startUpstream,
} from './gateway.mjs';

const MESSAGES = [{ role: 'user', content: 'Please summarise why a gateway keeps applications simple' }];
const MAX_TOKENS = 1024;

const WEATHER_TOOL = {
  name: 'get_weather',
  description: 'Weather for a city.',
  input_schema: {
    type: 'object',
    properties: { city: { type: 'string' }, days: { type: 'integer' } },
    required: ['city'],
  },
};

let upstream;
let gateway;

before(async () => {
  upstream = await startUpstream();
  gateway = await startGateway(gatewayConfig(upstream));
});

after(async () => {
  await gateway?.stop();
  await upstream?.close();
});

/** The Anthropic SDK's base URL has no `/v1`: it adds it to every path itself. */
function client({ apiKey = CLIENT_KEY, maxRetries = 0, sent = [] } = {}) {
  return new Anthropic({
    baseURL: `http://${gateway.addr}`,
    apiKey,
    maxRetries,
    timeout: CLIENT_TIMEOUT_MS,
    fetch: countingFetch(sent),
  });
}

// --------------------------------------------------------------------------------------------
// Models
// --------------------------------------------------------------------------------------------

test('models.list() from the Anthropic SDK lists the configured aliases', async () => {
  const models = [];
  for await (const model of client().models.list()) models.push(model);

  assert.deepEqual(models.map((m) => m.id).sort(), [...CONFIGURED_MODELS].sort());
  assert.ok(models.every((m) => m.type === 'model' && m.display_name === m.id));
  assert.ok(models.every((m) => new Date(m.created_at).getUTCFullYear() >= 2024));
});

// --------------------------------------------------------------------------------------------
// Messages, streamed and not
// --------------------------------------------------------------------------------------------

test('messages.create on a mock model answers text with end_turn and usage', async () => {
  const { data: message, response } = await client()
    .messages.create({ model: 'demo-fast', max_tokens: MAX_TOKENS, messages: MESSAGES })
    .withResponse();

  assert.equal(message.type, 'message');
  assert.equal(message.role, 'assistant');
  assert.equal(message.model, 'demo-fast', 'the alias the client sent');
  assert.match(message.id, /^msg_/);
  assert.equal(message.content.length, 1);
  assert.equal(message.content[0].type, 'text');
  assert.ok(message.content[0].text.trim(), 'the answer has text');
  assert.equal(message.stop_reason, 'end_turn');
  assert.ok(message.usage.input_tokens > 0 && message.usage.output_tokens > 0);
  assert.equal(response.headers.get('x-ballast-provider'), 'mock');
  assert.equal(response.headers.get('x-ballast-attempts'), '1');
});

test('messages.stream() text events and finalMessage() equal the non-streamed answer', async () => {
  const sdk = client();
  const whole = await sdk.messages.create({ model: 'demo-fast', max_tokens: MAX_TOKENS, messages: MESSAGES });
  const stream = sdk.messages.stream({ model: 'demo-fast', max_tokens: MAX_TOKENS, messages: MESSAGES });
  const texts = [];
  const events = [];
  stream.on('text', (delta) => texts.push(delta));
  stream.on('streamEvent', (event) => events.push(event.type));
  const final = await stream.finalMessage();

  assert.equal(events[0], 'message_start');
  assert.equal(events.at(-1), 'message_stop');
  assert.ok(texts.length > 1, `the text came in ${texts.length} event(s)`);
  assert.equal(texts.join(''), whole.content[0].text);
  assert.deepEqual(
    final.content.map((block) => [block.type, block.text]),
    [['text', whole.content[0].text]],
  );
  assert.equal(final.stop_reason, 'end_turn');
  assert.equal(final.usage.output_tokens, whole.usage.output_tokens);
});

test('a tool call from an OpenAI-compatible upstream becomes a tool_use block with parsed input', async () => {
  const hitsBefore = upstream.seen('tool').length;
  const message = await client().messages.create({
    model: 'fake-tool',
    max_tokens: 256,
    messages: [{ role: 'user', content: 'What is the weather in Paris for two days?' }],
    tools: [WEATHER_TOOL],
  });

  assert.equal(message.stop_reason, 'tool_use');
  const uses = message.content.filter((block) => block.type === 'tool_use');
  assert.equal(uses.length, 1, JSON.stringify(message.content));
  assert.equal(typeof uses[0].id, 'string');
  assert.ok(uses[0].id);
  assert.equal(uses[0].name, FAKE_TOOL_CALL.name);
  assert.deepEqual(uses[0].input, FAKE_TOOL_CALL.input);

  const seen = upstream.seen('tool').slice(hitsBefore);
  assert.equal(seen.length, 1);
  assert.equal(seen[0].body.model, 'upstream-model-tool');
  assert.equal(seen[0].body.max_completion_tokens, 256);
  assert.equal(seen[0].body.tools.length, 1);
  assert.equal(seen[0].body.tools[0].type, 'function');
  assert.equal(seen[0].body.tools[0].function.name, WEATHER_TOOL.name);
  assert.deepEqual(seen[0].body.tools[0].function.parameters, WEATHER_TOOL.input_schema);
});

test('messages.countTokens counts the input tokens, more for a longer prompt', async () => {
  const sdk = client();
  const { data: short, response } = await sdk.messages
    .countTokens({ model: 'demo-fast', messages: MESSAGES })
    .withResponse();
  const long = await sdk.messages.countTokens({
    model: 'demo-fast',
    messages: [{ role: 'user', content: MESSAGES[0].content.repeat(20) }],
  });

  assert.ok(Number.isInteger(short.input_tokens) && short.input_tokens > 0, JSON.stringify(short));
  assert.ok(long.input_tokens > short.input_tokens, `${long.input_tokens} <= ${short.input_tokens}`);
  assert.equal(response.headers.get('x-ballast-estimate'), 'true', 'no anthropic target: an estimate');
});

// --------------------------------------------------------------------------------------------
// Errors, in Anthropic's shape
// --------------------------------------------------------------------------------------------

test('an unknown model raises NotFoundError (404 not_found_error)', async () => {
  const err = await client()
    .messages.create({ model: 'no-such-model', max_tokens: MAX_TOKENS, messages: MESSAGES })
    .catch((e) => e);

  assert.ok(err instanceof Anthropic.NotFoundError, `got ${err}`);
  assert.equal(err.status, 404);
  assert.equal(err.error?.type, 'error');
  assert.equal(err.type, 'not_found_error');
  assert.match(err.message, /no-such-model/);
});

test('an upstream failing 500 every time raises APIError 529 overloaded_error, without SDK retries', async () => {
  const sent = [];
  const hitsBefore = upstream.seen('fail500').length;
  // An application's default retries: the gateway's `x-should-retry: false` must stop them.
  const err = await client({ maxRetries: 2, sent })
    .messages.create({ model: 'fake-500', max_tokens: MAX_TOKENS, messages: MESSAGES })
    .catch((e) => e);

  assert.ok(err instanceof Anthropic.APIError, `got ${err}`);
  assert.equal(err.status, 529);
  assert.equal(err.type, 'overloaded_error');
  assert.equal(err.headers.get('x-should-retry'), 'false');
  assert.equal(sent.length, 1, `the SDK retried: ${sent}`);
  assert.equal(upstream.seen('fail500').length - hitsBefore, 1);
});

test("the gateway's rate limit raises RateLimitError (429 rate_limit_error)", async () => {
  // LIMITED_KEY may make one request a minute. Three quick requests span at most one minute
  // boundary, so at least two share a minute and the later one of them is refused.
  const sdk = client({ apiKey: LIMITED_KEY });
  let answered = 0;
  let refused = null;
  for (let i = 0; i < 3 && !refused; i++) {
    try {
      await sdk.messages.create({ model: 'demo-fast', max_tokens: MAX_TOKENS, messages: MESSAGES });
      answered += 1;
    } catch (err) {
      refused = err;
    }
  }

  assert.ok(answered >= 1, 'the first request of the minute is answered');
  assert.ok(refused instanceof Anthropic.RateLimitError, `got ${refused}`);
  assert.equal(refused.status, 429);
  assert.equal(refused.type, 'rate_limit_error');
  assert.ok(refused.headers.get('retry-after'), 'a 429 says when to come back');
});
