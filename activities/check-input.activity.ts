import { ApplicationFailure } from '@temporalio/common';
import { contentHash } from '../src/audit/audit-chain';
import { FailureType } from '../src/contracts';
import type { PipelineDefinition } from '../src/pipelines/definition-schema';
import type { InputChecker } from '../src/security';

export interface CheckInputArgs {
  definition: PipelineDefinition;
  definitionHash: string;
  input: unknown;
}

export interface CheckInputResult {
  inputHash: string;
  bytes: number;
}

/** The run's security stage: the definition's input schema and size limit, checked inside the run itself. */
export function createCheckInputActivity(deps: { checker: InputChecker }) {
  return async function checkInput(args: CheckInputArgs): Promise<CheckInputResult> {
    const res = deps.checker.check(args.definition.input, args.definitionHash, args.input, args.definition.limits.maxInputBytes);
    if (!res.ok) {
      throw ApplicationFailure.create({
        type: FailureType.InputRejected,
        nonRetryable: true,
        message: `input rejected: ${res.problems.map((p) => `${p.path || '(root)'} ${p.message}`).join('; ')}`,
        details: [{ problems: res.problems }],
      });
    }
    return { inputHash: contentHash(args.input), bytes: res.bytes };
  };
}
