// The standard grpc.health.v1.Health service. Its proto is tiny and fixed,
// so it is declared here as JSON for proto-loader rather than shipped as a
// second .proto file. The daemon reports NOT_SERVING as soon as it starts
// shutting down, so load balancers and solvers stop sending new work.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { LOADER_OPTIONS } from './proto.js';

const HEALTH_JSON = {
  nested: {
    grpc: {
      nested: {
        health: {
          nested: {
            v1: {
              options: { csharp_namespace: 'Grpc.Health.V1', go_package: 'google.golang.org/grpc/health/grpc_health_v1' },
              nested: {
                HealthCheckRequest: { fields: { service: { type: 'string', id: 1 } } },
                HealthCheckResponse: {
                  fields: { status: { type: 'ServingStatus', id: 1 } },
                  nested: { ServingStatus: { values: { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } } },
                },
                Health: {
                  methods: {
                    Check: { requestType: 'HealthCheckRequest', responseType: 'HealthCheckResponse' },
                    Watch: { requestType: 'HealthCheckRequest', responseType: 'HealthCheckResponse', responseStream: true },
                  },
                },
              },
            },
          },
        },
      },
    },
  },
};

export type ServingStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

let def: protoLoader.PackageDefinition | undefined;

export function healthProto(): { def: protoLoader.PackageDefinition; ctor: grpc.ServiceClientConstructor } {
  def ??= protoLoader.fromJSON(HEALTH_JSON as unknown as Parameters<typeof protoLoader.fromJSON>[0], LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(def) as unknown as { grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } } };
  return { def, ctor: pkg.grpc.health.v1.Health };
}

type Req = { service: string };
type Res = { status: ServingStatus };

export class HealthService {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watchers = new Set<{ service: string; call: grpc.ServerWritableStream<Req, Res> }>();

  constructor(services: string[]) {
    for (const s of ['', ...services]) this.statuses.set(s, 'SERVING');
  }

  /** Sets every service's status (the daemon is one unit: all serve or none does). */
  setAll(status: ServingStatus): void {
    for (const s of this.statuses.keys()) this.statuses.set(s, status);
    for (const w of this.watchers) w.call.write({ status: this.statuses.get(w.service) ?? 'SERVICE_UNKNOWN' });
  }

  /** Ends Watch streams so a graceful shutdown does not wait for them. */
  endWatches(): void {
    for (const w of this.watchers) w.call.end();
    this.watchers.clear();
  }

  addTo(server: grpc.Server): void {
    server.addService(healthProto().ctor.service, {
      Check: (call: grpc.ServerUnaryCall<Req, Res>, cb: grpc.sendUnaryData<Res>) => {
        const st = this.statuses.get(call.request.service ?? '');
        if (!st) cb({ code: grpc.status.NOT_FOUND, details: `unknown service ${call.request.service}` });
        else cb(null, { status: st });
      },
      Watch: (call: grpc.ServerWritableStream<Req, Res>) => {
        const w = { service: call.request.service ?? '', call };
        this.watchers.add(w);
        call.write({ status: this.statuses.get(w.service) ?? 'SERVICE_UNKNOWN' });
        call.on('cancelled', () => this.watchers.delete(w));
      },
    });
  }
}
