// Polyglot check: a Node caller of realauth.v1 using @grpc/grpc-js and @grpc/proto-loader, the way a service in
// another language would. Usage: node client.js HOST:PORT HTTP_BASE. Prints one JSON object with what it saw.
'use strict';
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const [target] = process.argv.slice(2);
const protoRoot = path.resolve(__dirname, '..', '..', 'proto');
const def = protoLoader.loadSync('realauth/v1/realauth.proto', {
  includeDirs: [protoRoot], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
});
const { realauth } = grpc.loadPackageDefinition(def);
const client = new realauth.v1.RealAuthService(target, grpc.credentials.createInsecure());

// google.rpc.Status and ErrorInfo, declared from their public field numbers to decode the details trailer.
const rpc = protobuf.parse(`
  syntax = "proto3";
  package google.rpc;
  message Any { string type_url = 1; bytes value = 2; }
  message Status { int32 code = 1; string message = 2; repeated Any details = 3; }
  message ErrorInfo { string reason = 1; string domain = 2; map<string, string> metadata = 3; }
`, { keepCase: true }).root;
const Status = rpc.lookupType('google.rpc.Status');
const ErrorInfo = rpc.lookupType('google.rpc.ErrorInfo');
const ResponseMetadata = protobuf.loadSync(path.join(protoRoot, 'realauth/v1/realauth.proto'))
  .lookupType('realauth.v1.ResponseMetadata');

function call(method, req, metadata) {
  return new Promise((resolve) => {
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(metadata || {})) md.set(k, v);
    client[method](req, md, { deadline: Date.now() + 10000 }, (err, resp) => resolve({ err, resp }));
  });
}

(async () => {
  const out = {};
  const created = await call('CreateAuthSession', {
    model: 'doubao-seedance-2-0-260128', callback_url: 'https://example.com/done', locale: 'en',
  }, { 'x-request-id': 'node-1' });
  if (created.err) throw created.err;
  out.session_id = created.resp.session.session_id;
  out.state = created.resp.session.state;
  out.verification_url = created.resp.session.verification_url;
  out.request_id = created.resp.response_metadata.request_id;

  const bad = await call('CreateAuthSession', { callback_url: 'ftp://nope' }, { 'x-request-id': 'node-2' });
  out.error_code = bad.err.code;
  const status = Status.decode(bad.err.metadata.get('grpc-status-details-bin')[0]);
  const info = status.details.find((d) => d.type_url.endsWith('google.rpc.ErrorInfo'));
  const decoded = ErrorInfo.decode(info.value);
  out.reason = decoded.reason;
  out.error_request_id = decoded.metadata.request_id;
  out.trailer_error_code = ResponseMetadata.decode(bad.err.metadata.get('realauth-response-metadata-bin')[0]).error.code;
  console.log(JSON.stringify(out));
  client.close();
})().catch((e) => { console.error(e); process.exit(1); });
