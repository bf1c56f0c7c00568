import type { AgentRegistry } from '../src/agents';
import type { AuditStore } from '../src/audit';
import type { InputChecker } from '../src/security';
import type { Logger, RunMetrics } from '../src/telemetry';
import { createCheckInputActivity } from './check-input.activity';
import { createRecordAuditActivity } from './record-audit.activity';
import { createRunAgentActivity } from './run-agent.activity';

export interface ActivityDeps {
  agents: AgentRegistry;
  audit: AuditStore;
  checker: InputChecker;
  metrics: RunMetrics;
  logger: Logger;
}

/** Every activity the pipeline workflow calls, bound to the clients the worker wires in. */
export function createActivities(deps: ActivityDeps) {
  return {
    runAgent: createRunAgentActivity(deps),
    checkInput: createCheckInputActivity(deps),
    recordAudit: createRecordAuditActivity(deps),
  };
}
export type Activities = ReturnType<typeof createActivities>;
export type { RunAgentArgs, RunAgentResult } from './run-agent.activity';
export type { CheckInputArgs, CheckInputResult } from './check-input.activity';
