import net from 'node:net'; import fs from 'node:fs';
const sock = process.argv[2]; try { fs.rmSync(sock); } catch {}
let n = 0; net.createServer((c) => { c.on('data', (d) => { n += d.length; }); }).listen(sock);
setTimeout(() => { console.log('bytes received', n); process.exit(0); }, 4000);
