import { Router } from 'express';
import { z } from 'zod';
import { ERROR_CODES, PUSH_ERROR_CODES, REQUEST_ERROR_CODES, type ErrorCode } from '../error-codes.js';
import type { UploadStatus } from '../ingest/uploads.js';
import { UPLOAD_STATES } from '../state/upload-record.js';

/**
 * `GET /openapi.json`: OpenAPI 3.1 for the gateway's own endpoints (status, events, push,
 * health, metrics). The tus endpoints (`/files/`, `/files/{id}`) follow the tus 1.0.0 protocol
 * and are only pointed to here. The schemas are zod's, so that their enums are the code's own
 * lists (states, error codes); test/openapi.test.ts checks real answers against them.
 */

/** Named schemas land in components; the others are described in place. */
const components = z.registry<{ id?: string; description?: string }>();
const described = <T extends z.ZodType>(schema: T, description: string): T => (components.add(schema, { description }), schema);
const named = <T extends z.ZodType>(schema: T, id: string, description: string): T => (components.add(schema, { id, description }), schema);

const meanings = (codes: readonly ErrorCode[]) => codes.map((c) => `\`${c}\`: ${ERROR_CODES[c].meaning}`).join('; ');
const count = (description: string) => described(z.int().min(0), description);
const dateTime = () => z.iso.datetime({ offset: true });
const uploadIdPattern = /^[0-9a-f]{32}$/;

const uploadState = named(
  z.enum(UPLOAD_STATES),
  'UploadState',
  '`receiving`: bytes still arriving; `queued`: complete, waiting for a push slot; `pushing`: streaming to Glance; ' +
    '`verifying`: checking that Glance holds our size and digest (its multihash); `active`: done; `retrying`: a transient failure, see ' +
    '`nextAttemptAt`; `awaiting_token`: the next request with a valid token resumes the push; `failed`: terminal, see `error`.',
);

const pushErrorCode = named(z.enum(PUSH_ERROR_CODES), 'PushErrorCode', `Why a push failed or waits. ${meanings(PUSH_ERROR_CODES)}.`);

const uploadStatus = named(
  z.strictObject({
    id: z.string().regex(uploadIdPattern),
    imageId: described(z.guid(), 'The Glance image.'),
    state: uploadState,
    size: count('Upload-Length, in bytes.'),
    offset: count('Bytes received.'),
    pushed: count('Bytes sent to Glance by the current (or last) push.'),
    attempts: count('Push attempts so far.'),
    nextAttemptAt: described(dateTime().nullable(), 'When `retrying`: the next attempt.'),
    glance: described(
      z
        .strictObject({
          status: described(z.string(), 'Glance image status (`queued`, `saving`, `active`, …).'),
          size: z.int().min(0).nullable(),
          checksum: described(z.string().nullable(), 'MD5 (Glance leaves it empty under FIPS).'),
          os_hash_algo: z.string().nullable(),
          os_hash_value: described(
            z.string().nullable(),
            "Glance's multihash, in the algorithm `os_hash_algo` names: what the gateway checks its own digest against.",
          ),
        })
        .nullable(),
      'The image as Glance last showed it (null before the first look).',
    ),
    error: described(
      z
        .strictObject({
          code: pushErrorCode,
          message: z.string(),
          httpStatus: described(z.int().optional(), "Glance's (or Keystone's) HTTP status, where there was one."),
        })
        .nullable(),
      'Why the push failed (or last failed).',
    ),
    unattended: described(
      z.boolean(),
      'Whether the push can finish without the client: the upload holds a Keystone trust (or the image is already active).',
    ),
    unattendedReason: described(z.string().nullable(), 'When `unattended` is false, why: the push then needs a request of the uploader after a restart or once its token expires.'),
    createdAt: dateTime(),
    updatedAt: dateTime(),
  }),
  'UploadStatus',
  'An upload and its push to Glance: the answer of `GET /files/{id}/status`, and the data of its events.',
);

named(
  z.strictObject({
    error: z.strictObject({
      code: named(z.enum(REQUEST_ERROR_CODES), 'ErrorCode', 'Stable; each code has one status (docs/errors.md has the table).'),
      message: z.string(),
    }),
  }),
  'Error',
  'Every error answer of the gateway.',
);
named(z.strictObject({ status: z.enum(['ok']) }), 'Health', 'The process answers.');
named(
  z.strictObject({
    status: z.enum(['ok', 'unavailable']),
    storage: described(z.string(), '`ok`, or why storage is not writable.'),
    state: described(z.string(), '`ok`, or why the shared state (Redis) does not answer; always `ok` with local state.'),
    glance: described(z.string(), '`ok`, or why Glance (or Keystone) does not answer.'),
  }),
  'Readiness',
  'What `/readyz` checked.',
);

/** The schema is the status object the gateway sends, no more and no less. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const statusIsTheSchema: Same<z.infer<typeof uploadStatus>, UploadStatus> = true;
void statusIsTheSchema;

/** The named schemas as OpenAPI components, their references pointing within the document. */
function componentSchemas(): Record<string, object> {
  const { schemas } = z.toJSONSchema(components, { metadata: components, uri: (id) => `#/components/schemas/${id}` });
  return Object.fromEntries(Object.entries(schemas).map(([id, { $schema: _s, $id: _i, ...schema }]) => [id, schema]));
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: object) => ({ 'application/json': { schema } });
const errorResponse = (description: string) => ({ description, content: json(ref('Error')) });

const uploadId = {
  name: 'id',
  in: 'path',
  required: true,
  description: 'The upload id: the last segment of the tus upload URL (`Location: /files/{id}`).',
  schema: { type: 'string', pattern: '^[0-9a-f]{32}$' },
};

const tokenResponses = {
  '401': errorResponse('No `X-Auth-Token` (`token_missing`), or Keystone/Glance rejected it (`token_rejected`).'),
  '404': errorResponse(
    'No such upload, or the token cannot see its image (`not_found`); both answer the same, so as not to reveal either.',
  ),
};

export const openApiDocument = {
  openapi: '3.1.0',
  info: {
    title: 'Glance upload gateway',
    version: '0.1.0',
    summary: 'Resumable (tus) uploads of disk images into OpenStack Glance.',
    description:
      'Uploads use the tus 1.0.0 protocol at `/files/` (creation, creation-with-upload, termination, expiration); ' +
      'see https://tus.io/protocols/resumable-upload. The upload metadata carries either `image_id` (an image in ' +
      'status `queued`) or `name` and `disk_format` (the gateway creates the image). Once the upload is complete, ' +
      'the gateway streams it to Glance with the uploader\'s token and checks that Glance holds exactly those bytes. ' +
      'This document describes the endpoints that follow the push. Every error is `{"error":{"code","message"}}`.',
    license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
  },
  externalDocs: { description: 'tus resumable upload protocol 1.0.0', url: 'https://tus.io/protocols/resumable-upload' },
  security: [{ keystoneToken: [] }],
  tags: [
    { name: 'uploads', description: 'Following an upload and its push to Glance' },
    { name: 'operations', description: 'Health, readiness and metrics (no token)' },
  ],
  paths: {
    '/files/{id}/status': {
      get: {
        operationId: 'getUploadStatus',
        tags: ['uploads'],
        summary: 'The upload and its push to Glance',
        parameters: [uploadId],
        responses: {
          '200': { description: 'The status object.', content: json(ref('UploadStatus')) },
          ...tokenResponses,
        },
      },
    },
    '/files/{id}/events': {
      get: {
        operationId: 'streamUploadEvents',
        tags: ['uploads'],
        summary: 'The status object as Server-Sent Events',
        description:
          'The stream starts with an `event: status` carrying the current status object, then sends `event: status` ' +
          'on every state change and `event: progress` (the same object) at most 4 times a second while bytes move. ' +
          'Every `data:` line is one UploadStatus as JSON. `event: removed` (`data: {"id":"…"}`) ends the stream when ' +
          'the upload is removed; a comment line `: keep-alive` comes every 15 s (every third of SOCKET_IDLE_TIMEOUT_MS if that ' +
          'is shorter, so an idle stream is never cut). The stream ends at gateway shutdown.',
        parameters: [uploadId],
        responses: {
          '200': {
            description: 'An endless event stream; `data` of `status` and `progress` events is an UploadStatus.',
            content: {
              'text/event-stream': {
                schema: { type: 'string' },
                example: 'event: status\ndata: {"id":"…","state":"pushing",…}\n\n',
              },
            },
          },
          ...tokenResponses,
        },
      },
    },
    '/files/{id}/push': {
      post: {
        operationId: 'restartPush',
        tags: ['uploads'],
        summary: 'Start a failed (or waiting) push again, with a fresh retry budget',
        description:
          'A push that is queued, pushing or verifying is left running and answered as it is. The token of this ' +
          'request becomes the one the push uses.',
        parameters: [uploadId],
        responses: {
          '202': { description: 'The push is (again) under way; the status object.', content: json(ref('UploadStatus')) },
          '409': errorResponse('Nothing to push: the upload is not complete, or the image is already active (`push_not_restartable`).'),
          ...tokenResponses,
        },
      },
    },
    '/healthz': {
      get: {
        operationId: 'health',
        tags: ['operations'],
        summary: 'The process answers',
        security: [],
        responses: { '200': { description: 'Alive.', content: json(ref('Health')) } },
      },
    },
    '/readyz': {
      get: {
        operationId: 'ready',
        tags: ['operations'],
        summary: 'Storage is writable and Glance (or Keystone, in catalog mode) answers',
        security: [],
        responses: {
          '200': { description: 'Ready.', content: json(ref('Readiness')) },
          '503': { description: 'Not ready; `storage` or `glance` holds the reason.', content: json(ref('Readiness')) },
        },
      },
    },
    '/metrics': {
      get: {
        operationId: 'metrics',
        tags: ['operations'],
        summary: 'Prometheus metrics',
        description: 'Prometheus text exposition format 0.0.4 (uploads, bytes, pushes, queue depth, Node.js process metrics).',
        security: [],
        responses: {
          '200': {
            description: 'The metrics.',
            content: { 'text/plain': { schema: { type: 'string' }, example: 'gateway_uploads_created_total 3\n' } },
          },
        },
      },
    },
    '/openapi.json': {
      get: {
        operationId: 'openApi',
        tags: ['operations'],
        summary: 'This document',
        security: [],
        responses: { '200': { description: 'OpenAPI 3.1.', content: json({ type: 'object' }) } },
      },
    },
  },
  components: {
    securitySchemes: {
      keystoneToken: {
        type: 'apiKey',
        in: 'header',
        name: 'X-Auth-Token',
        description:
          'A Keystone token (as for Glance). It must see the upload\'s image. It is kept only in memory, never stored.',
      },
    },
    schemas: componentSchemas(),
  },
};

/** Serves the document; no token needed. */
export function openApiRoutes(): Router {
  const router = Router();
  const body = JSON.stringify(openApiDocument);
  router.get('/openapi.json', (_req, res) => {
    res.set('Cache-Control', 'no-cache').type('application/json').send(body);
  });
  return router;
}
