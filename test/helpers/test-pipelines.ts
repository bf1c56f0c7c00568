/** Pipelines for the run-control paths, shared by the workflow tests and the replay recorder. */

export const approvalYaml = (opts: { timeout?: string; onTimeout?: string; extra?: string; before?: number } = {}) => `
name: approval-flow
version: 1
description: an agent, an approval, an agent
input: { type: object, properties: { text: { type: string } } }
stages:
  - name: prepare
    agent: sleeper
    with: { ms: ${opts.before ?? 0} }
  - name: review
    approval:
      roles: [approver]
      timeout: ${opts.timeout ?? '1h'}
      onTimeout: ${opts.onTimeout ?? 'reject'}
${opts.extra ?? ''}
  - name: after
    agent: lookup
    with: { key: "\${review.decision}", table: { approved: yes, timed_out: late } }
`;

export const cancelYaml = `
name: cancellable
version: 1
description: a long agent with compensation
input: { type: object, properties: { text: { type: string } } }
stages:
  - name: long
    agent: sleeper
    with: { ms: 600000 }
    timeout: 15m
    heartbeatTimeout: 2s
  - name: never
    agent: lookup
    with: { key: a, table: { a: b } }
onCancel:
  - name: undo
    agent: lookup
    with: { key: a, table: { a: undone } }
`;

export const parallelYaml = (onFailure: string, third = 'lookup') => `
name: fan-out
version: 1
description: three agents in parallel, then a join
input: { type: object, properties: { text: { type: string } } }
stages:
  - name: group
    parallel:
      maxConcurrency: 2
      onFailure: ${onFailure}
      stages:
        - name: a
          agent: sleeper
          with: { ms: 300 }
        - name: b
          agent: pii-redact
          with: { text: "mail me at x@example.com" }
        - name: c
          agent: ${third}
          with: ${third === 'lookup' ? '{ key: k, table: { k: v } }' : '{ text: t }'}
          retry: { maximumAttempts: 1 }
  - name: join
    agent: lookup
    with: { key: "\${b.text}", table: { "mail me at <EMAIL_ADDRESS>": redacted } }
`;

/** A stage whose agent ignores cancellation: a cancel request meets the stage's timeout before any acknowledgement. */
export const deafYaml = `
name: deaf
version: 1
description: an agent that ignores cancellation
input: { type: object }
stages:
  - name: long
    agent: sleeper
    # Past its timeout, but not so long that it holds up a worker's shutdown.
    with: { ms: 6000, deaf: true }
    timeout: 3s
    heartbeatTimeout: 1s
    retry: { maximumAttempts: 10 }
`;

/** A run that outlives its run timeout. */
export const slowYaml = `
name: slow
version: 1
description: outlives its run timeout
input: { type: object }
limits: { runTimeout: 2s }
stages:
  - name: long
    agent: sleeper
    with: { ms: 600000 }
    timeout: 2s
    heartbeatTimeout: 1s
    # The stage's own timeout equals the run's (it may not be longer): with attempts left, a stage timeout in the
    # same moment is retried rather than failing the stage, so the run deadline is what ends the run.
    retry: { maximumAttempts: 10 }
`;
