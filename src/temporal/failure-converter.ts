/**
 * How errors travel through Temporal. The default converter stores a failure's message and stack trace in plain
 * text, outside the payload codec; ours moves them into an encoded attribute, so the codec encrypts them like every
 * other payload. An agent's error can quote the customer text it choked on, and histories outlive runs.
 *
 * Loaded by path (`failureConverterPath`): the worker bundles it into the workflow code, and clients require it.
 * Safe for the workflow sandbox: it imports nothing but the SDK's common package.
 */
import { DefaultFailureConverter } from '@temporalio/common';

export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
