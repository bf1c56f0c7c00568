export { createInputChecker, type InputChecker, type InputProblem, type InputCheckResult } from './input-check';
export { screenForInjection, INJECTION_RULES, type InjectionFinding, type InjectionRule } from './injection-guard';
