// The conversation with tests/oauth/test_interop_node.py: one JSON object per line each way.
// The test is the person (and the browser); the script is the relying party.
import { createInterface } from 'node:readline'
import * as client from 'openid-client'
import { createRemoteJWKSet, jwtVerify } from 'jose'

const incoming = createInterface({ input: process.stdin })[Symbol.asyncIterator]()

/** Tell the test something: `{"step": step, ...fields}` on one line of stdout. */
export function say(step, fields = {}) {
  process.stdout.write(JSON.stringify({ step, ...fields }) + '\n')
}

/** The test's next line, parsed. */
export async function hear() {
  const { value, done } = await incoming.next()
  if (done) throw new Error('the test closed stdin before answering')
  return JSON.parse(value)
}

/**
 * The client's Configuration from discovery at the issuer (http://127.0.0.1 needs
 * allowInsecureRequests). A client with a secret authenticates with client_secret_basic,
 * a public one with none. ``fetchHook`` (openid-client's customFetch) sees every request.
 */
export async function discover({ issuer, client_id, client_secret }, fetchHook = undefined) {
  const auth = client_secret ? client.ClientSecretBasic(client_secret) : client.None()
  // enableNonRepudiationChecks: openid-client checks the signatures of the ID Tokens it is
  // given at the token endpoint too (by default it trusts TLS for those) against the JWKS
  const options = { execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks] }
  if (fetchHook) options[client.customFetch] = fetchHook
  return client.discovery(new URL(issuer), client_id, client_secret ?? undefined, auth, options)
}

/**
 * Checks the id_token's signature with jose against the issuer's published JWKS (not through
 * openid-client), with iss and aud; returns its header's alg and kid and its payload.
 */
export async function verifyWithJwks(config, idToken) {
  const metadata = config.serverMetadata()
  const jwks = createRemoteJWKSet(new URL(metadata.jwks_uri))
  const { payload, protectedHeader } = await jwtVerify(idToken, jwks, {
    issuer: metadata.issuer,
    audience: config.clientMetadata().client_id,
  })
  return { alg: protectedHeader.alg, kid: protectedHeader.kid ?? null, payload }
}

/** Runs the flow; any failure is one `{"step": "error"}` line and exit code 1. */
export function run(flow) {
  flow()
    .then(() => process.exit(0))
    .catch((error) => {
      say('error', {
        name: error?.name ?? null,
        message: String(error?.message ?? error),
        code: error?.code ?? null,
        error: error?.error ?? null,
        error_description: error?.error_description ?? null,
        status: error?.status ?? null,
        cause: error?.cause ? String(error.cause?.message ?? error.cause) : null,
      })
      process.exit(1)
    })
}
