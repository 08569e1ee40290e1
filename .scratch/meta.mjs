import * as grpc from '@grpc/grpc-js';
import { cacheProto } from '/work/h10a/dist/src/api/proto.js';
const addr = process.argv[2]; const size = Number(process.argv[3]);
const C = cacheProto().ctor;
const c = new C(addr, grpc.credentials.createInsecure());
const md = new grpc.Metadata(); md.set('authorization', 'Bearer ' + 'a'.repeat(size));
const t0 = Date.now();
c.Inspect({ source: { spec: 'type=local,src=x', type: '', attrs: {} } }, md, { deadline: Date.now() + 8000 }, (err, v) => {
  console.log('took', Date.now() - t0, err ? [err.code, err.details] : v); c.close();
});
