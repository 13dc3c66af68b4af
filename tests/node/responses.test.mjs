// The official `openai` Node SDK's Responses API (`client.responses`) and embeddings
// (`client.embeddings`), unmodified, against the real gateway binary (gateway.mjs). On the mock
// (`demo-fast`, `demo-embed`) the gateway translates Responses through chat completions and
// writes the Responses stream events itself, which Node's stream helper checks strictly
// (PROTOCOL.md §12.4). Each test states one thing a client application relies on.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import OpenAI from 'openai';

import { CLIENT_KEY, CLIENT_TIMEOUT_MS, CUT_STREAM_WORDS, countingFetch, gatewayConfig, startGateway, startUpstream } from './gateway.mjs';

const USER_TEXT = 'Please summarise why a gateway keeps applications simple';
const WEATHER_QUESTION = 'What is the weather like in Paris today?';
// A Responses function tool: flat, no `function` wrapper as in chat.
const WEATHER_TOOL = {
  type: 'function',
  name: 'get_weather',
  description: 'Weather for a city.',
  parameters: {
    type: 'object',
    properties: { city: { type: 'string' } },
    required: ['city'],
    additionalProperties: false,
  },
  strict: true,
};
const TOOL_RESULT = 'Sunny and 21 degrees in the city';
const MOCK_DIMENSIONS = 1536;

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

/** A client with an application's default retries; `sent` gets every request it sends. */
function client({ sent = [] } = {}) {
  return new OpenAI({
    baseURL: `http://${gateway.addr}/v1`,
    apiKey: CLIENT_KEY,
    maxRetries: 2,
    timeout: CLIENT_TIMEOUT_MS,
    fetch: countingFetch(sent),
  });
}

/** Every event of a stream; bounded because the client timeout bounds each read. */
async function collect(stream) {
  const events = [];
  for await (const event of stream) {
    events.push(event);
    assert.ok(events.length < 10_000, 'the stream does not end');
  }
  return events;
}

const deltasOf = (events) =>
  events
    .filter((e) => e.type === 'response.output_text.delta')
    .map((e) => e.delta)
    .join('');

const norm = (vector) => Math.sqrt(vector.reduce((sum, x) => sum + x * x, 0));

// --------------------------------------------------------------------------------------------
// Responses
// --------------------------------------------------------------------------------------------

test('a response has output_text, usage and the x-ballast headers', async () => {
  const { data, response } = await client().responses.create({ model: 'demo-fast', input: USER_TEXT }).withResponse();

  assert.equal(response.status, 200);
  assert.equal(data.object, 'response');
  assert.match(data.id, /^resp_/);
  assert.equal(data.status, 'completed');
  assert.deepEqual(
    data.output.map((item) => item.type),
    ['message'],
  );
  assert.equal(typeof data.output_text, 'string');
  assert.ok(data.output_text.trim(), 'the answer has text');
  assert.equal(data.output_text, data.output[0].content[0].text);
  assert.ok(data.usage.input_tokens > 0 && data.usage.output_tokens > 0);
  assert.equal(data.usage.total_tokens, data.usage.input_tokens + data.usage.output_tokens);

  assert.equal(response.headers.get('x-ballast-provider'), 'mock');
  assert.equal(response.headers.get('x-ballast-route'), 'primary');
  assert.equal(response.headers.get('x-ballast-cache'), 'off');
  assert.equal(data._request_id, response.headers.get('x-request-id'));
});

test('a raw response stream starts with response.created and ends with response.completed', async () => {
  const sdk = client();
  const whole = await sdk.responses.create({ model: 'demo-fast', input: USER_TEXT });
  const events = await collect(await sdk.responses.create({ model: 'demo-fast', input: USER_TEXT, stream: true }));

  assert.equal(events[0].type, 'response.created');
  assert.equal(events.at(-1).type, 'response.completed');
  assert.deepEqual(
    events.map((e) => e.sequence_number),
    events.map((_, n) => n),
  );
  const completed = events.at(-1).response;
  assert.equal(events[0].response.id, completed.id, 'one response id from start to end');
  assert.equal(deltasOf(events), completed.output[0].content[0].text);
  assert.equal(deltasOf(events), whole.output_text, 'streamed and whole answers agree');
});

test('responses.stream(...).finalResponse() gives the response the deltas spelled', async () => {
  const stream = client().responses.stream({ model: 'demo-fast', input: USER_TEXT });
  let text = '';
  stream.on('response.output_text.delta', (event) => {
    text += event.delta;
  });

  const final = await stream.finalResponse();

  assert.equal(final.status, 'completed');
  assert.ok(final.output_text.trim());
  assert.equal(final.output_text, text);
  assert.ok(final.usage.output_tokens > 0);
});

test('the stream helper assembles a function call, and its output sent back is answered', async () => {
  const sdk = client();
  const question = [{ role: 'user', content: WEATHER_QUESTION }];
  const first = await sdk.responses.stream({ model: 'demo-fast', input: question, tools: [WEATHER_TOOL] }).finalResponse();

  const calls = first.output.filter((item) => item.type === 'function_call');
  assert.equal(calls.length, 1);
  assert.equal(calls[0].name, 'get_weather');
  assert.ok(calls[0].call_id);
  assert.deepEqual(Object.keys(JSON.parse(calls[0].arguments)), ['city']);

  // The gateway of this file keeps no conversation (no cache store): the whole input goes back.
  const second = await sdk.responses.create({
    model: 'demo-fast',
    input: [...question, ...first.output, { type: 'function_call_output', call_id: calls[0].call_id, output: TOOL_RESULT }],
    tools: [WEATHER_TOOL],
  });

  assert.ok(second.output.every((item) => item.type === 'message'));
  assert.ok(second.output_text.startsWith(`Thanks, the tool said: ${TOOL_RESULT}`), second.output_text);
});

test('a response stream cut mid-way by the upstream makes the iteration throw', async () => {
  const hitsBefore = upstream.seen('cut').length;
  const stream = await client().responses.create({ model: 'fake-cut', input: USER_TEXT, stream: true });
  let received = '';
  const err = await (async () => {
    for await (const event of stream) {
      if (event.type === 'response.output_text.delta') received += event.delta;
      assert.ok(received.length < 1_000, 'the stream does not end');
    }
  })().then(
    () => null,
    (e) => e,
  );

  assert.ok(err instanceof OpenAI.APIError, `the stream ended without an error (got ${err})`);
  assert.equal(err.status, undefined, 'the stream had started with a 200');
  assert.equal(received, CUT_STREAM_WORDS.join(''), 'the deltas before the cut are delivered');
  assert.equal(upstream.seen('cut').length - hitsBefore, 1);
});

test('an upstream failing 500 every time raises InternalServerError (503) without SDK retries', async () => {
  const sent = [];
  const err = await client({ sent })
    .responses.create({ model: 'fake-500', input: USER_TEXT })
    .catch((e) => e);

  assert.ok(err instanceof OpenAI.InternalServerError, `got ${err}`);
  assert.equal(err.status, 503);
  assert.equal(err.headers.get('x-should-retry'), 'false');
  assert.deepEqual(sent, [`POST http://${gateway.addr}/v1/responses`], 'the SDK retried');
});

// --------------------------------------------------------------------------------------------
// Embeddings
// --------------------------------------------------------------------------------------------

test('embeddings.create() asks for base64 by default and decodes it to 1536 floats of unit norm', async () => {
  const sent = [];
  const { data, response } = await client({ sent })
    .embeddings.create({ model: 'demo-embed', input: 'A gateway keeps applications simple' })
    .withResponse();

  assert.equal(response.status, 200);
  assert.equal(data.object, 'list');
  assert.equal(data.data.length, 1);
  const vector = data.data[0].embedding;
  assert.ok(Array.isArray(vector), `got ${typeof vector}`);
  assert.equal(vector.length, MOCK_DIMENSIONS);
  assert.ok(vector.every((x) => typeof x === 'number' && Number.isFinite(x)));
  assert.ok(Math.abs(norm(vector) - 1) < 1e-5, `norm ${norm(vector)}`);
  assert.ok(data.usage.prompt_tokens > 0);
  assert.equal(response.headers.get('x-ballast-provider'), 'mock');
  assert.equal(sent.length, 1);
});

test('an explicit float encoding gives the same vector, and dimensions shortens it', async () => {
  const sdk = client();
  const input = ['The cat sat on the mat', 'Retries need budgets'];
  const decoded = await sdk.embeddings.create({ model: 'demo-embed', input });
  const floats = await sdk.embeddings.create({ model: 'demo-embed', input, encoding_format: 'float' });
  const short = await sdk.embeddings.create({ model: 'demo-embed', input, dimensions: 64 });

  assert.deepEqual(
    floats.data.map((item) => item.index),
    [0, 1],
  );
  for (const [n, item] of floats.data.entries()) {
    assert.deepEqual(Array.from(new Float32Array(item.embedding)), decoded.data[n].embedding, 'the same float32 vector in either encoding');
  }
  assert.notDeepEqual(decoded.data[0].embedding, decoded.data[1].embedding);
  assert.ok(short.data.every((item) => item.embedding.length === 64 && Math.abs(norm(item.embedding) - 1) < 1e-5));
});
