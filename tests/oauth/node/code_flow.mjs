// Authorization code + PKCE, as a relying party using openid-client 6 would do it:
// discovery, the authorization URL, the code exchange (openid-client checks the id_token,
// state, nonce and the response's iss), userinfo, a refresh, introspection and revocation
// (confidential client), and the end-session URL.
//
// stdin:  {"issuer", "client_id", "client_secret" (null for a public client), "redirect_uri",
//          "post_logout_redirect_uri"}, later {"callback_url"}
// stdout: {"step": "authorize", "url"}, then {"step": "done", ...} or {"step": "error", ...}
import * as client from 'openid-client'
import { discover, hear, run, say, verifyWithJwks } from './lines.mjs'

run(async () => {
  const rp = await hear()
  const config = await discover(rp)
  const metadata = config.serverMetadata()

  const verifier = client.randomPKCECodeVerifier()
  const state = client.randomState()
  const nonce = client.randomNonce()
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: rp.redirect_uri,
    scope: 'openid profile email offline_access',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  })
  say('authorize', { url: url.href })

  const { callback_url } = await hear()
  const tokens = await client.authorizationCodeGrant(config, new URL(callback_url), {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  })
  const claims = tokens.claims()
  const verified = await verifyWithJwks(config, tokens.id_token)
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub)

  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token)
  const refreshedUserinfo = await client.fetchUserInfo(config, refreshed.access_token, claims.sub)

  // RFC 7662 / 7009 need client authentication: the confidential client only
  let introspection = null
  if (rp.client_secret) {
    const active = await client.tokenIntrospection(config, refreshed.access_token)
    await client.tokenRevocation(config, refreshed.refresh_token)
    const revoked = await client.tokenIntrospection(config, refreshed.refresh_token)
    introspection = { access_token: active, revoked_refresh_token: revoked }
  }

  const logoutState = client.randomState()
  const endSession = client.buildEndSessionUrl(config, {
    id_token_hint: tokens.id_token,
    post_logout_redirect_uri: rp.post_logout_redirect_uri,
    state: logoutState,
  })

  say('done', {
    issuer: metadata.issuer,
    token_type: tokens.token_type,
    scope: tokens.scope ?? null,
    expires_in: tokens.expiresIn() ?? null,
    access_token: tokens.access_token,
    refresh_token: tokens.refresh_token ?? null,
    claims,
    verified,
    userinfo,
    refreshed: {
      access_token: refreshed.access_token,
      refresh_token: refreshed.refresh_token ?? null,
      claims: refreshed.claims() ?? null,
      userinfo: refreshedUserinfo,
    },
    introspection,
    end_session_url: endSession.href,
    logout_state: logoutState,
  })
})
