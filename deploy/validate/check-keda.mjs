// Checks KEDA ScaledObjects in rendered manifests (kubectl kustomize output), run by .ci/validate-deploy.sh.
// usage: node check-keda.mjs RENDERED.yaml...
//
// 1. Schema: @kubernetes-models/keda validates against KEDA's CRD schema (types, required fields, enums). That
//    schema does not forbid unknown fields, so 2. checks the parts that matter by name.
// 2. Wiring: the target Deployment exists in the same rendering; a `temporal` trigger watches the task queue and
//    namespace the worker is configured with (its ConfigMap), with metadata keys the scaler knows and an endpoint
//    variable the worker container defines; a `cpu` trigger whose target container requests CPU.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject';
import { parseAllDocuments } from 'yaml';

// Metadata of KEDA's temporal scaler (keda.sh docs, scalers/temporal, 2.17 to 2.22).
const TEMPORAL_KEYS = new Set([
  'endpoint', 'endpointFromEnv', 'namespace', 'taskQueue', 'targetQueueSize', 'activationTargetQueueSize', 'queueTypes',
  'workerDeploymentName', 'workerDeploymentBuildId', 'buildId', 'selectAllActive', 'selectUnversioned',
  'includeRunningWorkflowCount', 'workflowTaskQueueForCount', 'minConnectTimeout', 'unsafeSsl', 'tlsServerName',
  'enableTLS', 'apiKey', 'apiKeyFromEnv',
]);
const QUEUE_TYPES = new Set(['workflow', 'activity', 'nexus']);

let errors = 0;
let checked = 0;
const fail = (msg) => {
  errors += 1;
  process.stderr.write(`  error: ${msg}\n`);
};

for (const file of process.argv.slice(2)) {
  const name = basename(file).replace(/\.ya?ml$/, '');
  const docs = parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS()).filter(Boolean);
  const deployments = new Map(docs.filter((d) => d.kind === 'Deployment').map((d) => [d.metadata.name, d]));
  const configMaps = new Map(docs.filter((d) => d.kind === 'ConfigMap').map((d) => [d.metadata.name, d.data ?? {}]));

  for (const so of docs.filter((d) => d.apiVersion === 'keda.sh/v1alpha1')) {
    checked += 1;
    const where = `${name}: ${so.kind}/${so.metadata?.name}`;
    if (so.kind !== 'ScaledObject') {
      fail(`${where}: only ScaledObject is expected`);
      continue;
    }
    try {
      new ScaledObject(so).validate();
    } catch (err) {
      fail(`${where}: KEDA CRD schema: ${err.message}`);
      continue;
    }
    const spec = so.spec;
    const target = deployments.get(spec.scaleTargetRef.name);
    if (!target || (spec.scaleTargetRef.kind ?? 'Deployment') !== 'Deployment') {
      fail(`${where}: scaleTargetRef ${spec.scaleTargetRef.name} is no Deployment of this rendering`);
      continue;
    }
    if ((spec.minReplicaCount ?? 0) < 1 || (spec.maxReplicaCount ?? 100) < (spec.minReplicaCount ?? 0)) {
      fail(`${where}: needs 1 <= minReplicaCount <= maxReplicaCount`);
    }
    const container = target.spec.template.spec.containers[0];
    const env = {};
    for (const from of container.envFrom ?? []) {
      if (from.configMapRef) Object.assign(env, configMaps.get(from.configMapRef.name) ?? {});
    }
    for (const e of container.env ?? []) env[e.name] = e.value ?? '(from a reference)';

    const temporal = spec.triggers.filter((t) => t.type === 'temporal');
    if (temporal.length !== 1) fail(`${where}: expected one trigger of type temporal`);
    for (const t of temporal) {
      const md = t.metadata ?? {};
      for (const key of Object.keys(md)) if (!TEMPORAL_KEYS.has(key)) fail(`${where}: temporal trigger: unknown metadata ${key}`);
      if (md.taskQueue !== env.TEMPORAL_TASK_QUEUE) {
        fail(`${where}: temporal trigger watches task queue ${md.taskQueue}, the worker polls ${env.TEMPORAL_TASK_QUEUE}`);
      }
      if ((md.namespace ?? 'default') !== (env.TEMPORAL_NAMESPACE ?? 'default')) {
        fail(`${where}: temporal trigger watches namespace ${md.namespace}, the worker uses ${env.TEMPORAL_NAMESPACE}`);
      }
      if (!md.endpoint && !md.endpointFromEnv) fail(`${where}: temporal trigger needs endpoint or endpointFromEnv`);
      if (md.endpointFromEnv && !(md.endpointFromEnv in env)) {
        fail(`${where}: endpointFromEnv ${md.endpointFromEnv} is not defined for the worker container`);
      }
      if (!/^\d+$/.test(md.targetQueueSize ?? '')) fail(`${where}: targetQueueSize must be a whole number (as a string)`);
      for (const q of (md.queueTypes ?? 'workflow').split(',')) {
        if (!QUEUE_TYPES.has(q.trim())) fail(`${where}: queueTypes: unknown type ${q}`);
      }
    }
    const cpu = spec.triggers.filter((t) => t.type === 'cpu');
    if (cpu.length !== 1) fail(`${where}: expected one trigger of type cpu`);
    for (const t of cpu) {
      if (!['Utilization', 'AverageValue'].includes(t.metricType)) fail(`${where}: cpu trigger needs metricType Utilization or AverageValue`);
      if (!/^\d+$/.test(t.metadata?.value ?? '')) fail(`${where}: cpu trigger needs metadata.value`);
      if (!container.resources?.requests?.cpu) fail(`${where}: cpu trigger, but ${target.metadata.name} requests no CPU`);
    }
  }
}

process.stdout.write(`  ${checked} ScaledObject(s): KEDA CRD schema (@kubernetes-models/keda), target, temporal and cpu triggers\n`);
if (checked === 0) fail('no ScaledObject found');
process.exit(errors ? 1 : 0);
