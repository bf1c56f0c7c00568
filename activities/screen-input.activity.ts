import type { InjectionFinding } from '../src/security';
import { screenForInjection } from '../src/security';
import type { ClaimStore } from '../src/storage/claim-store';

export interface ScreenInputArgs {
  tenant: string;
  stage: string;
  input: Record<string, unknown>;
}

/**
 * The guard check before a stage marked `untrustedText`: screens the stage's input (claimed payloads included)
 * for prompt-injection patterns. The workflow applies the pipeline's policy and audits what was found.
 */
export function createScreenInputActivity(deps: { claims: ClaimStore }) {
  return async function screenInput(args: ScreenInputArgs): Promise<{ findings: InjectionFinding[] }> {
    const input = await deps.claims.resolve(args.input, args.tenant);
    return { findings: screenForInjection(input).slice(0, 50) };
  };
}
