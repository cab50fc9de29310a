// ort_bench.js - ONNX Runtime (onnxruntime-node, CPU) on one model: the peer for bench/run.sh.
// usage: node ort_bench.js MODEL.onnx BATCH THREADS SECONDS SIZE
// Prints one JSON line like `xbnserve bench`: img_per_s, p50_ms, p99_ms.
'use strict';
const ort = require('onnxruntime-node');

async function main() {
    const [file, batch, threads, seconds, size] = process.argv.slice(2);
    const b = +batch, t = +threads, s = +size;
    const sess = await ort.InferenceSession.create(file, {
        intraOpNumThreads: t, interOpNumThreads: 1, executionMode: 'sequential',
        graphOptimizationLevel: 'all',
    });
    const data = new Float32Array(b * 3 * s * s);
    let r = 1;
    for (let i = 0; i < data.length; i++) { r = (r * 1103515245 + 12345) >>> 0; data[i] = (r >>> 16) / 32768 - 1; }
    const feeds = { [sess.inputNames[0]]: new ort.Tensor('float32', data, [b, 3, s, s]) };
    for (let i = 0; i < 2; i++) await sess.run(feeds);
    const lat = [];
    const t0 = process.hrtime.bigint();
    let last = t0;
    while (Number(last - t0) / 1e9 < +seconds || lat.length < 3) {
        await sess.run(feeds);
        const now = process.hrtime.bigint();
        lat.push(Number(now - last) / 1e6);
        last = now;
    }
    const total = Number(last - t0) / 1e9;
    lat.sort((x, y) => x - y);
    console.log(JSON.stringify({
        peer: 'onnxruntime', version: ort.env.versions ? ort.env.versions.common : 'unknown',
        model: file, batch: b, threads: t, iterations: lat.length,
        img_per_s: +(b * lat.length / total).toFixed(2),
        p50_ms: +lat[Math.floor(lat.length / 2)].toFixed(3),
        p99_ms: +lat[Math.floor(lat.length * 0.99)].toFixed(3),
    }));
}
main().catch((e) => { console.error(e); process.exit(1); });
