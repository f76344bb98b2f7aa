// RFC 8628 device authorization grant with openid-client 6: ask for a user code, let the
// test approve it as a signed-in phone, poll the token endpoint until the tokens come, and
// check the id_token with jose against the published JWKS.
//
// stdin:  {"issuer", "client_id", "client_secret" (null for a public client)}
// stdout: {"step": "device", "response"}, {"step": "pending"} (the first authorization_pending),
//         then {"step": "done", ...} or {"step": "error", ...}
import * as client from 'openid-client'
import { discover, hear, run, say, verifyWithJwks } from './lines.mjs'

// The token endpoint's error replies while polling, counted by error code; the first
// authorization_pending is told to the test, which approves only after it.
const pollErrors = {}
let tokenEndpoint = null

async function watchTokenReplies(url, options) {
  const reply = await fetch(url, options)
  if (url === tokenEndpoint && reply.status === 400) {
    const { error } = await reply.clone().json()
    pollErrors[error] = (pollErrors[error] ?? 0) + 1
    if (error === 'authorization_pending' && pollErrors[error] === 1) say('pending')
  }
  return reply
}

run(async () => {
  const rp = await hear()
  const config = await discover(rp, watchTokenReplies)
  tokenEndpoint = config.serverMetadata().token_endpoint

  const response = await client.initiateDeviceAuthorization(config, {
    scope: 'openid profile email offline_access',
  })
  say('device', { response })

  // Bounded: openid-client gives up at the reply's expires_in; this stops sooner.
  const tokens = await client.pollDeviceAuthorizationGrant(config, response, undefined, {
    signal: AbortSignal.timeout(60_000),
  })
  const claims = tokens.claims()
  const verified = await verifyWithJwks(config, tokens.id_token)
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub)

  say('done', {
    token_type: tokens.token_type,
    scope: tokens.scope ?? null,
    access_token: tokens.access_token,
    refresh_token: tokens.refresh_token ?? null,
    claims,
    verified,
    userinfo,
    poll_errors: pollErrors,
  })
})
