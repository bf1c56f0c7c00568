import { createHash } from 'node:crypto';
import type { DataConverter } from '@temporalio/common';
import { AesGcmPayloadCodec, parseKeyRing } from '../../src/codec';
import { dataConverterFor } from '../../src/temporal/connection';

/**
 * The payload key ring every test uses, in `PAYLOAD_KEYS` format: the in-process clients and workers and the
 * facade and worker processes the e2e tests spawn. Derived from a fixed label rather than random, so histories
 * that `npm run replay:record` writes (encrypted with it) still decrypt when the replay test runs later.
 */
export const TEST_PAYLOAD_KEYS = `test-1:${createHash('sha256').update('agentry test payload key 1').digest('base64')}`;

export const testPayloadCodec = new AesGcmPayloadCodec({ keys: parseKeyRing(TEST_PAYLOAD_KEYS) });

/** For `Worker.create`, `new Client` and `TestWorkflowEnvironment.createLocal({ client })`: as in production, failure messages go through the codec too. */
export const testDataConverter: DataConverter = dataConverterFor(testPayloadCodec);
