// The standard grpc.health.v1.Health service definition, shared by the daemon
// (which serves it) and the client (which asks it). Its proto is tiny and
// fixed, so it is declared here as JSON for proto-loader rather than shipped
// as a second .proto file.
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
