import { Runtime } from '@temporalio/worker';

/**
 * Installs the Temporal SDK Runtime with its Prometheus exporter (task slots, pollers, schedule-to-start latency,
 * sticky cache: `temporal_*`), on a port of its own and apart from the process's prom-client registry. Must run
 * before the worker opens any connection: the Runtime is created once, with the first connection, and keeps its
 * telemetry settings for the life of the process. Returns the address it serves, or undefined when turned off.
 */
export function installSdkMetrics(host: string, port: number | 'off'): string | undefined {
  if (port === 'off') return undefined;
  // The exporter takes an IP address, not a host name.
  const ip = host === 'localhost' ? '127.0.0.1' : host;
  const bindAddress = `${ip.includes(':') ? `[${ip}]` : ip}:${port}`;
  try {
    Runtime.install({ telemetryOptions: { metrics: { prometheus: { bindAddress } } } });
  } catch (err) {
    // The exporter binds its port inside install(): a port in use surfaces here, named after the setting.
    throw new Error(`WORKER_SDK_METRICS_PORT ${port}: the Temporal SDK metrics exporter could not start on ${bindAddress}: ${err instanceof Error ? err.message : String(err)}`);
  }
  return bindAddress;
}
