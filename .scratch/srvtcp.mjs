import http2 from 'node:http2';
const srv = http2.createServer({ maxSendHeaderBlockLength: Number.MAX_SAFE_INTEGER, maxSessionMemory: Number.MAX_SAFE_INTEGER });
srv.on('stream', (st, h) => { st.respond({ ':status': 200 }); st.end(); });
srv.listen(0, '127.0.0.1', () => console.log(srv.address().port));
setTimeout(() => process.exit(0), 30000);
