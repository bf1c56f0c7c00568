import type { Client } from '@temporalio/client';
import { SEARCH_ATTRIBUTES } from '../contracts';

/**
 * Refuses to run against a namespace that lacks the project's search attributes: starts would otherwise fail
 * one by one with an opaque server error. Names the attributes and the command that adds them.
 */
export async function assertSearchAttributes(client: Client, namespace: string): Promise<void> {
  const res = await client.connection.operatorService.listSearchAttributes({ namespace });
  const present = res.customAttributes ?? {};
  const missing = Object.keys(SEARCH_ATTRIBUTES).filter((name) => !(name in present));
  if (missing.length === 0) return;
  throw new Error(
    `Temporal namespace "${namespace}" lacks the search attributes ${missing.join(', ')}. Add them with: ` +
      missing.map((name) => `temporal operator search-attribute create --namespace ${namespace} --name ${name} --type ${SEARCH_ATTRIBUTES[name]}`).join(' && ') +
      ' (a dev server started with --search-attribute NAME=Keyword has them).',
  );
}
