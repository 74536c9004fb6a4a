// Tap mode for a Node.js bot (Node 18+, no dependencies): copy this file next to
// your webhook handler.
//
// RBM keeps delivering to your bot. Your bot passes each webhook request on to
// rbm-analytics' ingest untouched (the raw body and its X-Goog-Signature, so
// ingest verifies it with the same client token) and posts what
// agentMessages.create returned for each message it sends.
//
//   RBM_ANALYTICS_URL      ingest's URL (terraform output webhook_url)
//   RBM_ANALYTICS_API_KEY  the agent API key (AGENT_API_KEYS)
//
// In an Express webhook handler (keep the raw body: express.raw, not express.json):
//
//   const tap = require('./rbm-analytics-tap');
//   app.post('/rbm', express.raw({type: '*/*'}), (req, res) => {
//     tap.forwardWebhook(req.body, req.get('X-Goog-Signature'));  // not awaited
//     const event = JSON.parse(Buffer.from(JSON.parse(req.body).message.data, 'base64'));
//     ...  // your bot's own handling, unchanged
//     res.sendStatus(200);
//   });
//
// Where the bot sends a message, wrap the create call once:
//
//   const create = tap.recordingCreate('my-agent',
//       (params) => rbm.phones.agentMessages.create(params));
//   const response = await create({parent: `phones/${msisdn}`, messageId, resource});
//
// A failed forward is retried a few times and then logged; it never holds up or
// fails the bot's own answer to RBM.
'use strict';

const TIMEOUT_MS = 10000;
const ATTEMPTS = 4;

function ingestUrl(path) {
  return process.env.RBM_ANALYTICS_URL.replace(/\/+$/, '') + path;
}

async function deliver(url, body, headers) {
  let status = 0;
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    try {
      const res = await fetch(url, {
        method: 'POST', body, headers, signal: AbortSignal.timeout(TIMEOUT_MS),
      });
      status = res.status;
      await res.arrayBuffer();
    } catch (err) {
      status = 0; // not reached: retried like a 503
    }
    if (status === 200 || (status >= 400 && status < 500 && status !== 429)) break;
    await new Promise((r) => setTimeout(r, 500 * 2 ** attempt));
  }
  if (status !== 200) console.warn(`rbm-analytics: ${url} answered ${status || 'nothing'}`);
  return status;
}

// One webhook request's raw body (a Buffer or string) and signature, to ingest.
function forwardWebhook(rawBody, signature) {
  return deliver(ingestUrl('/'), rawBody, {
    'Content-Type': 'application/json',
    'X-Goog-Signature': signature || '',
  });
}

// What agentMessages.create returned (name, sendTime, contentMessage, ...).
function recordSent(agentId, response) {
  const message = response && response.data ? response.data : response;
  return deliver(ingestUrl('/agent-messages'), JSON.stringify({...message, agentId}), {
    'Content-Type': 'application/json',
    'Authorization': `Bearer ${process.env.RBM_ANALYTICS_API_KEY}`,
  });
}

// create(params) -> Promise<response>, wrapped so every sent message is recorded.
function recordingCreate(agentId, create) {
  return async (params) => {
    const response = await create(params);
    recordSent(agentId, response); // not awaited: sending never waits for analytics
    return response;
  };
}

module.exports = {forwardWebhook, recordSent, recordingCreate};
