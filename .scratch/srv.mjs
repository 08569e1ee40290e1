import http2 from 'node:http2';
import fs from 'node:fs';
const sock = process.argv[2]; try { fs.rmSync(sock); } catch {}
const opts = JSON.parse(process.argv[3] || '{}');
const srv = http2.createServer({ maxSendHeaderBlockLength: Number.MAX_SAFE_INTEGER, maxSessionMemory: Number.MAX_SAFE_INTEGER, ...opts });
srv.on('session', (s) => { console.log('srv session'); s.on('error', (e) => console.log('srv session error', e.code)); s.on('frameError', (...a) => console.log('srv frameError', a)); s.on('close', () => console.log('srv session close')); });
srv.on('stream', (st, h) => { console.log('srv stream', Object.keys(h)); st.respond({ ':status': 200 }); st.end(); });
srv.on('sessionError', (e) => console.log('sessionError', e.code));
srv.listen(sock, () => console.log('listening'));
setTimeout(() => process.exit(0), 40000);
