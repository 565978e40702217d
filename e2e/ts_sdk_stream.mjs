// The official TypeScript SDK (@anthropic-ai/sdk) streaming a tool call through the router.
//
// The SDK's MessageStream accumulates the SSE events itself (indexes, input_json_delta re-parsing,
// usage merging), so a framing mistake the router's Python tests could agree with shows up here as an
// exception or a wrong finalMessage(). Run by e2e/test_ts_sdk.py; prints one JSON summary line and exits
// non-zero on the first failed check.
//
//   E2E_NODE_MODULES=.e2e/node_modules ANTHROPIC_BASE_URL=http://127.0.0.1:PORT ANTHROPIC_API_KEY=k \
//   E2E_MODEL=e2e-model E2E_NONCE=abc node e2e/ts_sdk_stream.mjs

import assert from 'node:assert/strict';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const nodeModules = path.resolve(process.env.E2E_NODE_MODULES ?? '.e2e/node_modules');
const sdkEntry = path.join(nodeModules, '@anthropic-ai', 'sdk', 'index.mjs');
const { default: Anthropic } = await import(pathToFileURL(sdkEntry).href);

const client = new Anthropic({
  baseURL: process.env.ANTHROPIC_BASE_URL,
  apiKey: process.env.ANTHROPIC_API_KEY,
  maxRetries: 0,
  timeout: 30_000,
});
const model = process.env.E2E_MODEL ?? 'e2e-model';
const nonce = process.env.E2E_NONCE ?? 'sdk';
const expectedInput = { city: 'Paris', unit: 'celsius', days: [1, 2] };

const params = {
  model,
  max_tokens: 1024,
  tools: [
    {
      name: 'get_weather',
      description: 'Get the weather forecast for a city',
      input_schema: {
        type: 'object',
        properties: {
          city: { type: 'string' },
          unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
          days: { type: 'array', items: { type: 'integer' } },
        },
        required: ['city', 'unit'],
      },
    },
  ],
  tool_choice: { type: 'any' },
  messages: [{ role: 'user', content: `Weather in Paris, please. e2e-scenario:sdk_tool:${nonce}` }],
};

function checkToolUse(message, label) {
  assert.equal(message.type, 'message', `${label}: type`);
  assert.equal(message.role, 'assistant', `${label}: role`);
  assert.equal(message.stop_reason, 'tool_use', `${label}: stop_reason`);
  const tools = message.content.filter((b) => b.type === 'tool_use');
  assert.equal(tools.length, 1, `${label}: one tool_use block`);
  assert.equal(tools[0].name, 'get_weather', `${label}: tool name`);
  assert.match(tools[0].id, /^[a-zA-Z0-9_-]+$/, `${label}: tool id matches Anthropic's id rule`);
  assert.deepEqual(tools[0].input, expectedInput, `${label}: tool input`);
  const texts = message.content.filter((b) => b.type === 'text');
  for (const t of texts) assert.ok(t.text.length > 0, `${label}: no empty text block`);
  assert.ok(message.usage.input_tokens > 0, `${label}: usage.input_tokens`);
  assert.ok(message.usage.output_tokens > 0, `${label}: usage.output_tokens`);
  return tools[0];
}

// 1. streaming: messages.stream() + finalMessage()
const stream = client.messages.stream(params);
const seen = { events: [], inputJson: 0, text: '' };
stream.on('streamEvent', (event) => seen.events.push(event.type));
stream.on('inputJson', () => { seen.inputJson += 1; });
stream.on('text', (delta) => { seen.text += delta; });
const streamed = await stream.finalMessage();
const streamedTool = checkToolUse(streamed, 'stream');
assert.equal(seen.events[0], 'message_start', 'stream: first event');
assert.equal(seen.events.at(-1), 'message_stop', 'stream: last event');
assert.ok(seen.inputJson >= 2, `stream: tool arguments arrived in fragments (${seen.inputJson} input_json events)`);

// 2. the same turn without streaming: messages.create()
const created = await client.messages.create(params);
checkToolUse(created, 'create');

// 3. the tool result goes back and the conversation continues (ids echo through the router).
const followUp = await client.messages.stream({
  ...params,
  tool_choice: { type: 'auto' },
  messages: [
    ...params.messages,
    { role: 'assistant', content: streamed.content },
    {
      role: 'user',
      content: [{ type: 'tool_result', tool_use_id: streamedTool.id, content: 'Sunny, 21 degrees' }],
    },
  ],
}).finalMessage();
assert.ok(['tool_use', 'end_turn'].includes(followUp.stop_reason), `follow-up: stop_reason ${followUp.stop_reason}`);

console.log(
  JSON.stringify({
    ok: true,
    tool_id: streamedTool.id,
    input: streamedTool.input,
    text: seen.text,
    events: seen.events.length,
    input_json_events: seen.inputJson,
    follow_up_stop_reason: followUp.stop_reason,
  }),
);
