// The harness of the Node SDK tests: the real gateway binary on 127.0.0.1:0 and a fake
// OpenAI-compatible upstream that records what it receives. Loopback only; every wait bounded.
//
// The gateway's models (the same for both test files; each file starts its own gateway):
// * `demo-fast`: the built-in offline `mock` provider (deterministic text, usage, streaming).
// * `demo-embed`: the mock's embeddings (deterministic unit vectors, 1536 dimensions).
// * `fake-500`, `fake-cut`, `fake-tool`: an `openai`-kind provider each, pointed at the fake
//   upstream under a path that picks its behaviour (HTTP 500 every time, a stream cut after two
//   chunks, a tool call). One attempt per request, so tests can count upstream hits.
// Auth is on: CLIENT_KEY has no limit, LIMITED_KEY one request a minute.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const STARTUP_TIMEOUT_MS = 20_000;
const SHUTDOWN_TIMEOUT_MS = 15_000;
// Every SDK call is bounded by this (the SDKs' `timeout` option).
export const CLIENT_TIMEOUT_MS = 20_000;

export const CLIENT_KEY = 'node-sdk-client-key-0001';
export const LIMITED_KEY = 'node-sdk-limited-key-0001';
export const UPSTREAM_KEY = 'node-sdk-upstream-key';
// The models the config lists, in its order.
export const CONFIGURED_MODELS = ['demo-fast', 'demo-embed', 'fake-500', 'fake-cut', 'fake-tool'];
// What the `cut` upstream streams before it drops the connection.
export const CUT_STREAM_WORDS = ['Hello', ' there'];
// The tool call the `tool` upstream answers with.
export const FAKE_TOOL_CALL = { id: 'call_fake_1', name: 'get_weather', input: { city: 'Paris', days: 2 } };

// --------------------------------------------------------------------------------------------
// Fake OpenAI-compatible upstream
// --------------------------------------------------------------------------------------------

function chunk(model, delta, finishReason = null) {
  return {
    id: 'chatcmpl-fake',
    object: 'chat.completion.chunk',
    created: 1_700_000_000,
    model,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
  };
}

function sendJson(res, status, payload) {
  const data = JSON.stringify(payload);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
  res.end(data);
}

const SCENARIOS = {
  fail500(req, res) {
    sendJson(res, 500, {
      error: { message: 'The fake upstream failed on purpose.', type: 'server_error', param: null, code: null },
    });
  },

  // Two content chunks in chunked framing, then the connection closes: no `[DONE]`, no final
  // zero-length chunk. What an upstream that dies mid-answer looks like.
  cut(req, res, body) {
    res.writeHead(200, { 'content-type': 'text/event-stream' }); // no length: chunked
    const events = CUT_STREAM_WORDS.map((word) => `data: ${JSON.stringify(chunk(body.model, { content: word }))}\n\n`);
    res.write(events[0]);
    // The gap is the upstream's behaviour (the words arrive apart), not synchronisation.
    setTimeout(() => res.write(events[1], () => res.socket.end()), 50);
  },

  tool(req, res, body) {
    sendJson(res, 200, {
      id: 'chatcmpl-fake-tool',
      object: 'chat.completion',
      created: 1_700_000_000,
      model: body.model,
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: null,
            tool_calls: [
              {
                id: FAKE_TOOL_CALL.id,
                type: 'function',
                function: { name: FAKE_TOOL_CALL.name, arguments: JSON.stringify(FAKE_TOOL_CALL.input) },
              },
            ],
          },
          logprobs: null,
          finish_reason: 'tool_calls',
        },
      ],
      usage: { prompt_tokens: 20, completion_tokens: 9, total_tokens: 29 },
    });
  },
};

/** A node:http server whose first path segment picks the scenario; it records every request. */
export async function startUpstream() {
  const requests = [];
  const server = createServer((req, res) => {
    const parts = req.url.split('?')[0].split('/').filter(Boolean);
    const scenario = parts[0] ?? '';
    const pieces = [];
    req.on('data', (piece) => pieces.push(piece));
    req.on('end', () => {
      let body;
      try {
        body = JSON.parse(Buffer.concat(pieces).toString() || '{}');
      } catch {
        body = { _unparsed: Buffer.concat(pieces).toString() };
      }
      requests.push({ scenario, path: req.url, headers: req.headers, body });
      const handler = SCENARIOS[scenario];
      if (!handler || parts.slice(1).join('/') !== 'v1/chat/completions') {
        return sendJson(res, 404, { error: { message: `no such path ${req.url}`, type: 'x' } });
      }
      handler(req, res, body);
    });
  });
  await new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', ok);
  });
  const { port } = server.address();
  return {
    baseUrl: (scenario) => `http://127.0.0.1:${port}/${scenario}/v1`,
    /** The requests a scenario received so far. */
    seen: (scenario) => requests.filter((r) => r.scenario === scenario),
    close: () =>
      new Promise((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

// --------------------------------------------------------------------------------------------
// The gateway binary
// --------------------------------------------------------------------------------------------

export function gatewayConfig(upstream) {
  const timeouts = '{ connect: 2s, first_byte: 10s, idle: 10s, total: 10s }';
  const provider = (scenario) =>
    `{ kind: openai, base_url: ${upstream.baseUrl(scenario)}, api_key: ${UPSTREAM_KEY}, ` +
    `timeouts: ${timeouts}, retry: { max_retries: 0 } }`;
  return `\
server: { listen: 127.0.0.1:0, request_timeout: 30s, shutdown_grace: 2s }
# Off: the tests count what reaches the upstream.
cache: { backend: none }
auth:
  keys:
    - { name: node-client, key: ${CLIENT_KEY} }
    - { name: node-limited, key: ${LIMITED_KEY}, rate_limit: { requests_per_minute: 1 } }
providers:
  mock: { kind: mock, latency: 5ms }
  upstream-500: ${provider('fail500')}
  upstream-cut: ${provider('cut')}
  upstream-tool: ${provider('tool')}
models:
  demo-fast:
    targets: [ { provider: mock, model: mock-small } ]
  demo-embed:
    targets: [ { provider: mock, model: mock-embedding } ]
  fake-500:
    targets: [ { provider: upstream-500, model: upstream-model-500 } ]
  fake-cut:
    targets: [ { provider: upstream-cut, model: upstream-model-cut } ]
  fake-tool:
    targets: [ { provider: upstream-tool, model: upstream-model-tool } ]
`;
}

function gatewayBinary() {
  return resolve(REPO_ROOT, process.env.BALLAST_BIN || 'target/debug/ballast');
}

/** The address of a `listening` log line (the JSON log format), else null. */
function listeningAddr(line) {
  try {
    const fields = JSON.parse(line)?.fields;
    return fields?.message === 'listening' && typeof fields.addr === 'string' ? fields.addr : null;
  } catch {
    return null;
  }
}

/**
 * Starts the binary on `configText` with `--listen 127.0.0.1:0` and resolves once it logged
 * the address it listens on. `stop()` sends SIGTERM to its PID and throws unless it exits 0.
 */
export async function startGateway(configText) {
  const dir = mkdtempSync(join(tmpdir(), 'ballast-node-'));
  const config = join(dir, 'node-sdk.yaml');
  writeFileSync(config, configText);
  const child = spawn(
    gatewayBinary(),
    ['serve', '--config', config, '--listen', '127.0.0.1:0', '--log-format', 'json'],
    { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const logLines = [];
  const logTail = (n = 40) => logLines.slice(-n).join('\n');
  const exited = new Promise((ok) => child.once('exit', (code, signal) => ok({ code, signal })));
  // If this test process ends without stop() (a crash), the gateway must not outlive it.
  const running = () => child.exitCode === null && child.signalCode === null;
  const killOnExit = () => running() && process.kill(child.pid, 'SIGKILL');
  process.once('exit', killOnExit);

  const addr = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`gateway did not log \`listening\` within ${STARTUP_TIMEOUT_MS} ms:\n${logTail()}`)), STARTUP_TIMEOUT_MS);
    child.once('error', (err) => {
      clearTimeout(timer);
      fail(new Error(`cannot start ${gatewayBinary()} (run \`cargo build\` or set BALLAST_BIN): ${err.message}`));
    });
    createInterface({ input: child.stderr }).on('line', (line) => {
      logLines.push(line);
      const found = listeningAddr(line);
      if (found) {
        clearTimeout(timer);
        ok(found);
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      fail(new Error(`gateway exited (code ${code}, signal ${signal}) before logging \`listening\`:\n${logTail()}`));
    });
  }).catch((err) => {
    killOnExit();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  });

  return {
    addr,
    pid: child.pid,
    logTail,
    async stop() {
      if (!running()) {
        throw new Error(`gateway died during the tests (code ${child.exitCode}, signal ${child.signalCode}):\n${logTail()}`);
      }
      process.kill(child.pid, 'SIGTERM');
      let timer;
      const timeout = new Promise((ok) => {
        timer = setTimeout(() => ok(null), SHUTDOWN_TIMEOUT_MS);
      });
      const result = await Promise.race([exited, timeout]);
      clearTimeout(timer);
      process.removeListener('exit', killOnExit);
      rmSync(dir, { recursive: true, force: true });
      if (result === null) {
        process.kill(child.pid, 'SIGKILL');
        throw new Error(`gateway did not exit within ${SHUTDOWN_TIMEOUT_MS} ms of SIGTERM:\n${logTail()}`);
      }
      if (result.code !== 0) {
        throw new Error(`gateway exited with ${result.code ?? result.signal} after SIGTERM:\n${logTail()}`);
      }
    },
  };
}

/** A `fetch` that records each request the SDK puts on the wire (its retries included). */
export function countingFetch(sent) {
  return (url, init) => {
    sent.push(`${init?.method ?? 'GET'} ${url}`);
    return fetch(url, init);
  };
}
