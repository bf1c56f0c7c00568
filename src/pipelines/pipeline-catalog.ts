import type { Agent } from '../agents/agent-contract';
import { definitionHash } from './definition-hash';
import type { PipelineDefinition } from './definition-schema';
import { loadPipelineDir, type AgentCatalog, type PipelineLoaderOptions } from './pipeline-loader';

export interface CatalogEntry {
  definition: PipelineDefinition;
  /** sha256 of the canonical definition: recorded with every run, so the audit trail names the exact version. */
  hash: string;
}

export interface PipelineCatalog {
  get(name: string): CatalogEntry | undefined;
  list(): CatalogEntry[];
}

/** Agent schemas as the loader needs them, from the agents a process hosts. */
export function agentCatalogOf(agents: readonly Agent[]): AgentCatalog {
  const byName = new Map(agents.map((a) => [a.name, a]));
  return { get: (name) => byName.get(name), names: () => [...byName.keys()] };
}

/** Loads and validates every definition in a folder once; a bad file stops start-up with its name and line. */
export async function loadPipelineCatalog(
  dir: string,
  agents: readonly Agent[],
  options: PipelineLoaderOptions = {},
): Promise<PipelineCatalog> {
  const entries = new Map<string, CatalogEntry>();
  for (const definition of (await loadPipelineDir(dir, agentCatalogOf(agents), options)).values()) {
    entries.set(definition.name, { definition, hash: definitionHash(definition) });
  }
  return { get: (name) => entries.get(name), list: () => [...entries.values()] };
}
