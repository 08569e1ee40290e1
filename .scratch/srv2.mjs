import http2 from 'node:http2';
import fs from 'node:fs';
const sock = process.argv[2]; try { fs.rmSync(sock); } catch {}
const srv = http2.createServer({ maxSendHeaderBlockLength: Number.MAX_SAFE_INTEGER, maxSessionMemory: Number.MAX_SAFE_INTEGER });
srv.on('session', (s) => { setTimeout(() => { const { ...st } = s.state; console.log('state', st, s.closed, s.destroyed, s.socket?.bytesRead); }, 1500); });
srv.on('stream', (st, h) => { st.respond({ ':status': 200 }); st.end(); });
srv.listen(sock, () => console.log('listening'));
setTimeout(() => process.exit(0), 4000);
