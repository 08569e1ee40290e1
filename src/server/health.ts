// The standard grpc.health.v1.Health service. The daemon reports NOT_SERVING
// as soon as it starts shutting down, so load balancers and solvers stop
// sending new work.
import * as grpc from '@grpc/grpc-js';
import { healthProto, type ServingStatus } from '../api/health-proto.js';

export { healthProto, type ServingStatus } from '../api/health-proto.js';

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
