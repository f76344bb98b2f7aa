// Bench-only peer: node oidc-provider 9 with the RFC 8628 device flow enabled.
//
//   node bench/peers/oidc_server.mjs PORT
//
// The store is an in-memory adapter written for the bench: a plain Map with expiry and no size
// cap (oidc-provider's own memory adapter is an LRU that keeps only 1,000 entries, too few for
// 10,000 waiting devices). It is not durable, like the default.
//
// POST /bench/approve  body: user_code=XXXX-XXXX
//   The bench's stand-in for a person who typed the user code, signed in and consented: it
//   binds an account and a grant to the device code, as the provider's own device
//   verification does at its end. The next token poll then gets tokens.
import http from 'node:http';
import Provider from 'oidc-provider';

const port = Number(process.argv[2] || 3000);
const issuer = `http://127.0.0.1:${port}`;
const CLIENT_ID = 'bench-device';

const now = () => Date.now();
const store = new Map(); // key -> { value, expiresAt }
let stored = 0;

function get(key) {
  const entry = store.get(key);
  if (!entry) return undefined;
  if (entry.expiresAt <= now()) {
    store.delete(key);
    return undefined;
  }
  return entry.value;
}

function put(key, value, expiresIn) {
  const expiresAt = typeof expiresIn === 'number' ? now() + expiresIn * 1000 : Infinity;
  store.set(key, { value, expiresAt });
  stored += 1;
}

setInterval(() => {
  const t = now();
  for (const [key, entry] of store) if (entry.expiresAt <= t) store.delete(key);
}, 10_000).unref();

class BenchAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    put(this.key(id), payload, expiresIn);
    if (payload.userCode) put(`userCode:${payload.userCode}`, id, expiresIn);
    if (payload.uid) put(`uid:${payload.uid}`, id, expiresIn);
    if (payload.grantId) {
      const k = `grant:${payload.grantId}`;
      const members = get(k) || [];
      members.push(this.key(id));
      put(k, members, expiresIn);
    }
  }

  async find(id) {
    return get(this.key(id));
  }

  async findByUserCode(userCode) {
    const id = get(`userCode:${userCode}`);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUid(uid) {
    const id = get(`uid:${uid}`);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const payload = get(this.key(id));
    if (payload) payload.consumed = Math.floor(now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const key of get(`grant:${grantId}`) || []) store.delete(key);
    store.delete(`grant:${grantId}`);
  }
}

const provider = new Provider(issuer, {
  adapter: BenchAdapter,
  clients: [
    {
      client_id: CLIENT_ID,
      grant_types: ['urn:ietf:params:oauth:grant-type:device_code'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'none',
    },
  ],
  features: {
    deviceFlow: { enabled: true },
    devInteractions: { enabled: false },
  },
  findAccount: async (ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  ttl: {
    AccessToken: 3600,
    DeviceCode: 600,
    Grant: 3600,
    IdToken: 3600,
    Interaction: 600,
    Session: 3600,
  },
});

async function approve(userCode) {
  const normalized = userCode.replace(/[^A-Za-z]/g, '').toUpperCase();
  const code = await provider.DeviceCode.findByUserCode(normalized);
  if (!code || code.accountId || code.isExpired) return false;
  const accountId = 'bench-user';
  const grant = new provider.Grant({ accountId, clientId: CLIENT_ID });
  grant.addOIDCScope('openid');
  const grantId = await grant.save();
  Object.assign(code, {
    accountId,
    grantId,
    scope: 'openid',
    authTime: Math.floor(now() / 1000),
  });
  await code.save();
  return true;
}

const callback = provider.callback();
const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/bench/approve') {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      const userCode = new URLSearchParams(body).get('user_code') || '';
      approve(userCode).then(
        (ok) => {
          res.writeHead(ok ? 200 : 404, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ approved: ok }));
        },
        (err) => {
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: String(err) }));
        },
      );
    });
    return;
  }
  if (req.method === 'GET' && req.url === '/bench/stats') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ entries: store.size, writes: stored }));
    return;
  }
  callback(req, res);
});
server.keepAliveTimeout = 65_000;
server.listen(port, '127.0.0.1', () => {
  console.error(`oidc-provider bench peer on ${issuer}`);
});
