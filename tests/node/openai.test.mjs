// The official `openai` Node SDK, unmodified, against the real gateway binary (gateway.mjs).
// Each test states one thing a client application relies on.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import OpenAI from 'openai';

import {
  CLIENT_KEY,
  CLIENT_TIMEOUT_MS,
  CONFIGURED_MODELS,
  CUT_STREAM_WORDS,
  countingFetch,
  gatewayConfig,
  startGateway,
  startUpstream,
} from './gateway.mjs';

const MESSAGES = [{ role: 'user', content: 'Please summarise why a gateway keeps applications simple' }];

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
function client({ apiKey = CLIENT_KEY, sent = [] } = {}) {
  return new OpenAI({
    baseURL: `http://${gateway.addr}/v1`,
    apiKey,
    maxRetries: 2,
    timeout: CLIENT_TIMEOUT_MS,
    fetch: countingFetch(sent),
  });
}

/** Every chunk of a stream; bounded because the client timeout bounds each read. */
async function collect(stream) {
  const chunks = [];
  for await (const chunk of stream) {
    chunks.push(chunk);
    assert.ok(chunks.length < 10_000, 'the stream does not end');
  }
  return chunks;
}

const textOf = (chunks) => chunks.flatMap((c) => c.choices.map((ch) => ch.delta.content ?? '')).join('');

// --------------------------------------------------------------------------------------------
// Completions, streamed and not
// --------------------------------------------------------------------------------------------

test('a non-streamed completion has content, usage and the x-ballast headers', async () => {
  const { data, response } = await client().chat.completions.create({ model: 'demo-fast', messages: MESSAGES }).withResponse();

  assert.equal(response.status, 200);
  assert.equal(data.object, 'chat.completion');
  assert.equal(data.choices.length, 1);
  const choice = data.choices[0];
  assert.equal(choice.message.role, 'assistant');
  assert.equal(typeof choice.message.content, 'string');
  assert.ok(choice.message.content.trim(), 'the answer has text');
  assert.equal(choice.finish_reason, 'stop');
  assert.ok(data.usage.prompt_tokens > 0 && data.usage.completion_tokens > 0);
  assert.equal(data.usage.total_tokens, data.usage.prompt_tokens + data.usage.completion_tokens);

  assert.equal(response.headers.get('x-ballast-provider'), 'mock');
  assert.equal(response.headers.get('x-ballast-route'), 'primary');
  assert.equal(response.headers.get('x-ballast-attempts'), '1');
  assert.equal(response.headers.get('x-ballast-cache'), 'off');
  assert.ok(response.headers.get('x-request-id'));
  assert.equal(data._request_id, response.headers.get('x-request-id'));
});

test('a streamed completion assembles the same text as the non-streamed one', async () => {
  const sdk = client();
  const whole = await sdk.chat.completions.create({ model: 'demo-fast', messages: MESSAGES });
  const chunks = await collect(await sdk.chat.completions.create({ model: 'demo-fast', messages: MESSAGES, stream: true }));

  assert.ok(chunks.length > 2, `only ${chunks.length} chunks`);
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk'));
  assert.equal(new Set(chunks.map((c) => c.id)).size, 1, 'every chunk of one completion has the same id');
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  const finishes = chunks.flatMap((c) => c.choices.map((ch) => ch.finish_reason)).filter(Boolean);
  assert.deepEqual(finishes, ['stop']);
  assert.ok(chunks.every((c) => c.choices.length > 0 && !c.usage), 'no usage chunk unless asked');
  assert.equal(textOf(chunks), whole.choices[0].message.content);
});

test('stream_options.include_usage ends the stream with the usage of the non-streamed answer', async () => {
  const sdk = client();
  const whole = await sdk.chat.completions.create({ model: 'demo-fast', messages: MESSAGES });
  const chunks = await collect(
    await sdk.chat.completions.create({
      model: 'demo-fast',
      messages: MESSAGES,
      stream: true,
      stream_options: { include_usage: true },
    }),
  );

  const last = chunks.at(-1);
  assert.deepEqual(last.choices, []);
  assert.deepEqual(last.usage, whole.usage);
  assert.ok(chunks.slice(0, -1).every((c) => !c.usage), 'usage only on the final chunk');
  assert.equal(textOf(chunks), whole.choices[0].message.content);
});

// --------------------------------------------------------------------------------------------
// Models and errors
// --------------------------------------------------------------------------------------------

test('models.list() lists the configured aliases', async () => {
  const models = [];
  for await (const model of client().models.list()) models.push(model);

  assert.deepEqual(models.map((m) => m.id).sort(), [...CONFIGURED_MODELS].sort());
  assert.ok(models.every((m) => m.object === 'model' && Number.isInteger(m.created) && m.owned_by));
});

test('an unknown model raises NotFoundError (404), sent once', async () => {
  const sent = [];
  const err = await client({ sent })
    .chat.completions.create({ model: 'no-such-model', messages: MESSAGES })
    .catch((e) => e);

  assert.ok(err instanceof OpenAI.NotFoundError, `got ${err}`);
  assert.equal(err.status, 404);
  assert.equal(err.code, 'model_not_found');
  assert.equal(err.param, 'model');
  assert.match(err.message, /no-such-model/);
  assert.ok(err.requestID, 'error responses carry x-request-id too');
  assert.equal(sent.length, 1, 'a 404 is never retried');
});

test('a wrong key raises AuthenticationError (401), sent once', async () => {
  const sent = [];
  const err = await client({ apiKey: 'node-sdk-wrong-key-0000', sent })
    .chat.completions.create({ model: 'demo-fast', messages: MESSAGES })
    .catch((e) => e);

  assert.ok(err instanceof OpenAI.AuthenticationError, `got ${err}`);
  assert.equal(err.status, 401);
  assert.equal(sent.length, 1);
});

// --------------------------------------------------------------------------------------------
// Failures: the gateway is the one retry layer, and a broken stream is never silent
// --------------------------------------------------------------------------------------------

test('an upstream failing 500 every time raises InternalServerError (503) without SDK retries', async () => {
  const sent = [];
  const hitsBefore = upstream.seen('fail500').length;
  const err = await client({ sent })
    .chat.completions.create({ model: 'fake-500', messages: MESSAGES })
    .catch((e) => e);

  assert.ok(err instanceof OpenAI.InternalServerError, `got ${err}`);
  assert.ok(err instanceof OpenAI.APIError);
  assert.equal(err.status, 503);
  assert.equal(err.code, 'upstream_unavailable');
  assert.equal(err.headers.get('x-should-retry'), 'false');
  assert.deepEqual(sent, [`POST http://${gateway.addr}/v1/chat/completions`], 'the SDK retried');
  // One SDK request, and (with no gateway retries configured) one upstream request.
  assert.equal(upstream.seen('fail500').length - hitsBefore, 1);
});

test("a stream cut mid-way by the upstream makes the SDK's iteration throw", async () => {
  const hitsBefore = upstream.seen('cut').length;
  const stream = await client().chat.completions.create({ model: 'fake-cut', messages: MESSAGES, stream: true });
  let received = '';
  const err = await (async () => {
    for await (const chunk of stream) {
      received += chunk.choices.map((ch) => ch.delta.content ?? '').join('');
      assert.ok(received.length < 1_000, 'the stream does not end');
    }
  })().then(
    () => null,
    (e) => e,
  );

  assert.ok(err instanceof OpenAI.APIError, `the stream ended without an error (got ${err})`);
  assert.equal(err.status, undefined, 'the stream had started with a 200');
  assert.equal(err.code, 'upstream_stream_error');
  assert.equal(received, CUT_STREAM_WORDS.join(''), 'the chunks before the cut are delivered');
  assert.equal(upstream.seen('cut').length - hitsBefore, 1);
});
