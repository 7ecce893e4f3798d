# The baseline: Argo's documented example executor plugin (shared/argo/vectors/hello-plugin-src/server.py),
# copied verbatim except for three values now read from the environment, with unchanged defaults:
#   ARGO_TOKEN_FILE (default /var/run/argo/token), PORT (default 4355), HOST (default '' = all addresses;
#   the benchmark sets 127.0.0.1).
# Changed lines: this header, `import os`, the open() of the token, the HTTPServer() address.
# Kept out of ruff (bench/ruff.toml) so that it stays the documented code.
import os
import json
from http.server import BaseHTTPRequestHandler, HTTPServer

with open(os.environ.get("ARGO_TOKEN_FILE", "/var/run/argo/token")) as f:
    token = f.read().strip()


class Plugin(BaseHTTPRequestHandler):

    def args(self):
        return json.loads(self.rfile.read(int(self.headers.get('Content-Length'))))

    def reply(self, reply):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(json.dumps(reply).encode("UTF-8"))

    def forbidden(self):
        self.send_response(403)
        self.end_headers()

    def unsupported(self):
        self.send_response(404)
        self.end_headers()

    def do_POST(self):
        if self.path == '/api/v1/template.execute':
            args = self.args()
            if 'hello' in args['template'].get('plugin', {}):
                if self.headers.get("Authorization") != "Bearer " + token:
                  self.forbidden()
                  return
                self.reply(
                    {'node': {'phase': 'Succeeded', 'message': 'Hello template!',
                              'outputs': {'parameters': [{'name': 'foo', 'value': 'bar'}]}}})
            else:
                self.reply(None)
        else:
            self.unsupported()


if __name__ == '__main__':
    httpd = HTTPServer((os.environ.get("HOST", ''), int(os.environ.get("PORT", "4355"))), Plugin)
    httpd.serve_forever()
