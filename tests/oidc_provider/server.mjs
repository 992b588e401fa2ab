// A real OpenID Connect provider (panva/oidc-provider) laid out like Microsoft Entra ID's v2.0
// endpoint, for the SSO tests. Test-only: in-memory storage, throwaway keys, test users.
//
// Environment:
//   OP_PORT                      port on 127.0.0.1; 0 picks a free one ("OP ready <port>" says which)
//   OP_TENANT                    tenant segment and default `tid`, e.g. a GUID
//   OP_CLIENT_ID, OP_CLIENT_SECRET
//   OP_REDIRECT_URIS             comma-separated
//   OP_POST_LOGOUT_REDIRECT_URIS comma-separated (optional)
//   OP_USERS_FILE                JSON: {"alice": {"password": "...", "oid": "...", "name": "...",
//                                "email": "...", "roles": [...], "tid": "...", "tamper": "..."}}
//   OP_TLS_CERT, OP_TLS_KEY      PEM files for the HTTPS listener
//   OP_AUTO_LOGIN                optional user name: skip the form and sign that user in
//
// Layout: issuer https://127.0.0.1:<port>/<tenant>/v2.0, discovery at
// <issuer>/.well-known/openid-configuration (MSAL's `authority` is https://127.0.0.1:<port>/<tenant>).
// The login form is served at /interaction/<uid> (title "Sign in", #username #password #signin #error).
//
// Negative-test hook: a user's "tamper" field makes the token endpoint hand out a bad ID token
// for that user, re-signed after oidc-provider issued a correct one:
//   wrong_audience, wrong_issuer, expired, not_yet_valid  claims changed, signed with the real key
//   forged_signature  signed with a key that is not published, under the real key's kid
//   unknown_kid       signed with that unpublished key under a kid that is not in the JWKS
//   rotated_key       signed with a second key that the JWKS publishes only from then on
//                     (a key rotation, for the relying party's refresh-on-unknown-kid path)
import * as crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as https from 'node:https';
import { URL, URLSearchParams } from 'node:url';
import { promisify } from 'node:util';

import Provider from 'oidc-provider';

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is required`);
  return value;
};
const list = (value) => value.split(',').map((s) => s.trim()).filter(Boolean);

const TENANT = env('OP_TENANT');
const CLIENT_ID = env('OP_CLIENT_ID');
const CLIENT_SECRET = env('OP_CLIENT_SECRET');
const REDIRECT_URIS = list(env('OP_REDIRECT_URIS'));
const POST_LOGOUT_REDIRECT_URIS = list(env('OP_POST_LOGOUT_REDIRECT_URIS', ''));
const USERS = JSON.parse(readFileSync(env('OP_USERS_FILE'), 'utf8'));
const AUTO_LOGIN = process.env.OP_AUTO_LOGIN || null;
const MOUNT = `/${TENANT}/v2.0`;
const TAMPER_MODES = new Set([
  'wrong_audience', 'wrong_issuer', 'expired', 'not_yet_valid',
  'forged_signature', 'unknown_kid', 'rotated_key',
]);

if (AUTO_LOGIN && !USERS[AUTO_LOGIN]) throw new Error(`OP_AUTO_LOGIN: no user ${AUTO_LOGIN}`);

// sub is opaque and stable per user, like Entra's; oid is the object id GUID.
const subFor = (username) => crypto.createHash('sha256')
  .update(`${TENANT}:${username}`).digest('base64url').slice(0, 43);
const userBySub = new Map();
for (const [username, user] of Object.entries(USERS)) {
  if (user.tamper && !TAMPER_MODES.has(user.tamper)) {
    throw new Error(`user ${username}: unknown tamper mode ${user.tamper}`);
  }
  userBySub.set(subFor(username), { username, ...user });
}

const generateKeyPair = promisify(crypto.generateKeyPair);
async function rsaKey(kid) {
  const { privateKey, publicKey } = await generateKeyPair('rsa', { modulusLength: 2048 });
  const pub = { ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
  const priv = { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
  return { privateKey, pub, priv };
}
// Fresh keys at each start, made in parallel (RSA key generation dominates the start-up time).
const suffix = crypto.randomBytes(4).toString('hex');
const [signingKey, rotatedKey, rogueKey] = await Promise.all([
  rsaKey(`op-${suffix}`), rsaKey(`op-next-${suffix}`), rsaKey(`rogue-${suffix}`),
]);
let rotated = false; // rotatedKey appears in the JWKS once it has signed something

function signJwt(header, payload, privateKey) {
  const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');
  const input = `${b64(header)}.${b64(payload)}`;
  const signature = crypto.sign('sha256', Buffer.from(input), privateKey).toString('base64url');
  return `${input}.${signature}`;
}

function tamperIdToken(idToken, mode, issuer) {
  const [headerPart, payloadPart] = idToken.split('.');
  const header = JSON.parse(Buffer.from(headerPart, 'base64url').toString());
  const claims = JSON.parse(Buffer.from(payloadPart, 'base64url').toString());
  const now = Math.floor(Date.now() / 1000);
  let key = signingKey.privateKey;
  switch (mode) {
    case 'wrong_audience': claims.aud = 'some-other-client'; break;
    case 'wrong_issuer': claims.iss = issuer.replace(`/${TENANT}/`, '/attacker-tenant/'); break;
    case 'expired': Object.assign(claims, { iat: now - 7200, exp: now - 3600 }); break;
    case 'not_yet_valid': Object.assign(claims, { nbf: now + 3600 }); break;
    case 'forged_signature': key = rogueKey.privateKey; break;
    case 'unknown_kid': key = rogueKey.privateKey; header.kid = rogueKey.pub.kid; break;
    case 'rotated_key': key = rotatedKey.privateKey; header.kid = rotatedKey.pub.kid; rotated = true; break;
    default: throw new Error(`unknown tamper mode ${mode}`);
  }
  return signJwt(header, claims, key);
}

const interactionPage = (uid, error) => `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Sign in</title></head>
<body><h1>Sign in</h1>
${error ? `<p id="error" role="alert">${error}</p>` : ''}
<form method="post" action="/interaction/${uid}/login" autocomplete="off">
<label>User name <input id="username" name="username" required autofocus></label>
<label>Password <input id="password" name="password" type="password" required></label>
<button id="signin" type="submit">Sign in</button>
</form></body></html>`;

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function sendHtml(res, status, html) {
  res.writeHead(status, {
    'Content-Type': 'text/html; charset=utf-8',
    'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(html),
  });
  res.end(html);
}

function checkPassword(username, password) {
  const user = Object.hasOwn(USERS, username) ? USERS[username] : null;
  if (!user) return false;
  const a = Buffer.from(String(password));
  const b = Buffer.from(String(user.password));
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

function makeProvider(issuer) {
  const provider = new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      redirect_uris: REDIRECT_URIS,
      post_logout_redirect_uris: POST_LOGOUT_REDIRECT_URIS,
      response_types: ['code'],
      grant_types: ['authorization_code', 'refresh_token'],
      token_endpoint_auth_method: 'client_secret_post', // MSAL posts the secret in the body
    }],
    jwks: { keys: [signingKey.priv] },
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    ttl: { // explicit, so that oidc-provider does not print a notice for each default
      AccessToken: 3600, AuthorizationCode: 60, Grant: 3600, IdToken: 3600,
      Interaction: 600, RefreshToken: 86400, Session: 3600,
    },
    pkce: { required: () => true }, // also for the confidential client, as Entra does
    conformIdTokenClaims: false, // MSAL reads only the ID token, so put profile claims there
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username', 'oid', 'tid', 'roles', 'ver'],
      email: ['email'],
    },
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: { enabled: true },
    },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    async loadExistingGrant(ctx) {
      // First-party app: no consent page, grant what was asked for.
      const grantId = ctx.oidc.result?.consent?.grantId
        || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope(ctx.oidc.requestParamScopes ? [...ctx.oidc.requestParamScopes].join(' ') : 'openid');
      await grant.save();
      return grant;
    },
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    async findAccount(ctx, sub) {
      const user = userBySub.get(sub);
      if (!user) return undefined;
      return {
        accountId: sub,
        async claims() {
          const claims = {
            sub,
            oid: user.oid,
            tid: user.tid ?? TENANT,
            ver: '2.0',
            name: user.name,
            preferred_username: user.preferred_username ?? user.email ?? user.username,
            email: user.email,
          };
          if (user.roles?.length) claims.roles = user.roles; // Entra omits an empty roles claim
          return claims;
        },
      };
    },
  });

  provider.use(async (ctx, next) => {
    await next();
    if (ctx.oidc?.route === 'token' && ctx.status === 200 && ctx.body?.id_token) {
      const payload = JSON.parse(Buffer.from(ctx.body.id_token.split('.')[1], 'base64url').toString());
      const mode = userBySub.get(payload.sub)?.tamper;
      if (mode) ctx.body = { ...ctx.body, id_token: tamperIdToken(ctx.body.id_token, mode, issuer) };
    } else if (ctx.oidc?.route === 'jwks' && rotated) {
      ctx.body = { keys: [...ctx.body.keys, rotatedKey.pub] };
    }
  });
  return provider;
}

async function handleInteraction(provider, req, res, url) {
  const match = url.pathname.match(/^\/interaction\/([\w-]+)(\/login)?$/);
  if (!match) return sendHtml(res, 404, 'not found');
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== match[1]) return sendHtml(res, 400, 'interaction mismatch');
  if (details.prompt.name !== 'login') {
    // loadExistingGrant makes consent implicit, so only login is expected here.
    return sendHtml(res, 400, `unexpected prompt ${details.prompt.name}`);
  }
  if (!match[2]) {
    if (req.method !== 'GET') return sendHtml(res, 405, 'method not allowed');
    if (AUTO_LOGIN) {
      return provider.interactionFinished(req, res, { login: { accountId: subFor(AUTO_LOGIN) } });
    }
    return sendHtml(res, 200, interactionPage(details.uid));
  }
  if (req.method !== 'POST') return sendHtml(res, 405, 'method not allowed');
  const form = await readForm(req);
  const username = form.get('username') ?? '';
  if (!checkPassword(username, form.get('password') ?? '')) {
    return sendHtml(res, 200, interactionPage(details.uid, 'Wrong user name or password.'));
  }
  return provider.interactionFinished(req, res, { login: { accountId: subFor(username) } });
}

const server = https.createServer({
  cert: readFileSync(env('OP_TLS_CERT')),
  key: readFileSync(env('OP_TLS_KEY')),
});

server.listen(Number(env('OP_PORT', '0')), '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `https://127.0.0.1:${port}${MOUNT}`;
  const provider = makeProvider(issuer);
  const callback = provider.callback();

  server.on('request', async (req, res) => {
    try {
      const url = new URL(req.url, issuer);
      if (url.pathname.startsWith('/interaction/')) {
        await handleInteraction(provider, req, res, url);
        return;
      }
      if (url.pathname !== MOUNT && !url.pathname.startsWith(`${MOUNT}/`)) {
        sendHtml(res, 404, 'not found');
        return;
      }
      if (url.pathname === `${MOUNT}/session/end` && url.searchParams.has('post_logout_redirect_uri')
        && !url.searchParams.has('client_id') && !url.searchParams.has('id_token_hint')) {
        // Entra redirects after logout without either; oidc-provider needs one of them.
        url.searchParams.set('client_id', CLIENT_ID);
      }
      // Mount under /<tenant>/v2.0: oidc-provider derives its mount path from originalUrl.
      req.originalUrl = `${url.pathname}${url.search}`;
      req.url = `${url.pathname.slice(MOUNT.length) || '/'}${url.search}`;
      callback(req, res);
    } catch (err) {
      console.error(err);
      if (!res.headersSent) sendHtml(res, 500, 'internal error');
      else res.end();
    }
  });

  process.stdout.write(`OP ready ${port}\n`);
});

// Exit at once: keep-alive connections from the test client would hold server.close() open.
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
