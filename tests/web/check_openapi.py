#!/usr/bin/python3
"""Checks pixpool's OpenAPI document against the OpenAPI 3.1 structure and a
running server.

    check_openapi.py --url http://127.0.0.1:PORT [--api-key KEY]

1. Fetches GET /openapi.json (no key: it is open) and validates it against
   openapi-3.1.schema.json next to this file (our own JSON Schema of the
   OpenAPI 3.1.0 objects); checks every Schema Object against JSON Schema
   draft 2020-12, every $ref, every path template's parameters, operation ids,
   tags and security scheme names.
2. Probes the server both ways: every documented (method, path) is served (a
   documented answer that is not the router's "no route" 404 nor a 405), and
   the methods and paths the document does not list get the router's 405
   (with Allow naming exactly the documented methods) or 404.
3. Makes real calls (health, backends, metrics, the page, an image, a job, its
   events, archive and results, a batch, errors) and checks each answer
   against its documented status, media type, required headers (with their
   schemas) and JSON schema. With --api-key, also that operations documented
   as open answer without a key and the others answer 401 without one.

Exits 0 with a one-line summary, or 1 listing every problem. Needs only the
standard library and python3-jsonschema (Debian).
"""

import argparse
import io
import json
import os
import re
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import jsonschema

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
STRUCTURE = os.path.join(HERE, "openapi-3.1.schema.json")
IMAGES = [os.path.join(ROOT, "tests", "data", name)
          for name in ("baboon_320x240.jpg", "fruits_320x240.jpg")]
OPERATION_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# The methods the server answers with 405 where a path does not take them.
ROUTER_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
TIMEOUT = 30


def json_pointer(parts):
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts) or "/"


class Answer:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # email.message.Message: case-insensitive
        self.body = body

    def media_type(self):
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def error(self):
        """(code, message) of an Error body, or (None, None)."""
        try:
            e = self.json()["error"]
            return e.get("code"), e.get("message")
        except (ValueError, KeyError, TypeError, AttributeError):
            return None, None


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def multipart(fields):
    """Body and Content-Type of multipart/form-data; fields are (name, filename|None, bytes)."""
    boundary = "pixpool-openapi-" + uuid.uuid4().hex
    out = io.BytesIO()
    for name, filename, data in fields:
        out.write(f"--{boundary}\r\n".encode())
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out.write(f"Content-Disposition: {disposition}\r\n".encode())
        if filename is not None:
            out.write(b"Content-Type: application/octet-stream\r\n")
        out.write(b"\r\n" + data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


class Checker:
    def __init__(self, base, api_key):
        self.base = base.rstrip("/")
        self.api_key = api_key
        self.problems = []
        self.checked_answers = 0
        self.doc = None
        self.resolver = None

    # ---- reporting and HTTP -------------------------------------------------
    def problem(self, message):
        self.problems.append(message)

    def request(self, method, path, body=None, headers=None, key=True):
        headers = dict(headers or {})
        if key and self.api_key:
            headers.setdefault("Authorization", f"Bearer {self.api_key}")
        req = urllib.request.Request(self.base + path, data=body, headers=headers, method=method)
        try:
            with OPENER.open(req, timeout=TIMEOUT) as res:
                return Answer(res.status, res.headers, res.read())
        except urllib.error.HTTPError as e:
            with e:
                return Answer(e.code, e.headers, e.read())

    # ---- the document -------------------------------------------------------
    def deref(self, node):
        """`node`, or what its $ref points to (followed); None when it does not resolve."""
        seen = 0
        while isinstance(node, dict) and "$ref" in node:
            node = self.pointer(node["$ref"])
            seen += 1
            if node is None or seen > 16:
                return None
        return node

    def pointer(self, ref):
        if not isinstance(ref, str) or not ref.startswith("#"):
            return None
        node = self.doc
        for token in ref[1:].split("/")[1:]:
            token = urllib.parse.unquote(token).replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and token in node:
                node = node[token]
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                return None
        return node

    def operations(self):
        """(METHOD, path, path item, operation) for every documented operation."""
        for path, item in (self.doc.get("paths") or {}).items():
            if not path.startswith("/") or not isinstance(item, dict):
                continue
            for method in OPERATION_METHODS:
                if isinstance(item.get(method), dict):
                    yield method.upper(), path, item, item[method]

    def check_structure(self):
        with open(STRUCTURE, encoding="utf-8") as f:
            structure = json.load(f)
        jsonschema.Draft202012Validator.check_schema(structure)
        validator = jsonschema.Draft202012Validator(
            structure, format_checker=jsonschema.FormatChecker())
        for error in sorted(validator.iter_errors(self.doc), key=lambda e: list(e.absolute_path)):
            where = json_pointer(error.absolute_path)
            self.problem(f"structure: at {where}: {error.message[:300]}")

    def check_refs(self):
        def walk(node, where):
            if isinstance(node, dict):
                for key, value in node.items():
                    if key == "$ref" and isinstance(value, str):
                        if self.pointer(value) is None:
                            self.problem(f"$ref {value!r} at {where} does not resolve")
                    walk(value, f"{where}/{key}")
            elif isinstance(node, list):
                for i, value in enumerate(node):
                    walk(value, f"{where}/{i}")
        walk(self.doc, "")

    def schema_objects(self):
        """(where, schema) for every Schema Object of the document (not inside schemas)."""
        found = []

        def media_map(content, where):
            for media, obj in (content or {}).items():
                if isinstance(obj, dict):
                    if "schema" in obj:
                        found.append((f"{where}/{media}/schema", obj["schema"]))
                    for name, enc in (obj.get("encoding") or {}).items():
                        for header, h in ((enc or {}).get("headers") or {}).items():
                            param_like(h, f"{where}/{media}/encoding/{name}/headers/{header}")

        def param_like(obj, where):  # Parameter or Header
            if not isinstance(obj, dict) or "$ref" in obj:
                return
            if "schema" in obj:
                found.append((f"{where}/schema", obj["schema"]))
            media_map(obj.get("content"), f"{where}/content")

        def response(obj, where):
            if not isinstance(obj, dict) or "$ref" in obj:
                return
            for name, h in (obj.get("headers") or {}).items():
                param_like(h, f"{where}/headers/{name}")
            media_map(obj.get("content"), f"{where}/content")

        components = self.doc.get("components") or {}
        for name, schema in (components.get("schemas") or {}).items():
            found.append((f"/components/schemas/{name}", schema))
        for name, obj in (components.get("parameters") or {}).items():
            param_like(obj, f"/components/parameters/{name}")
        for name, obj in (components.get("headers") or {}).items():
            param_like(obj, f"/components/headers/{name}")
        for name, obj in (components.get("responses") or {}).items():
            response(obj, f"/components/responses/{name}")
        for name, obj in (components.get("requestBodies") or {}).items():
            if isinstance(obj, dict) and "$ref" not in obj:
                media_map(obj.get("content"), f"/components/requestBodies/{name}/content")
        for path, item in (self.doc.get("paths") or {}).items():
            if not isinstance(item, dict):
                continue
            for i, p in enumerate(item.get("parameters") or []):
                param_like(p, f"/paths/{path}/parameters/{i}")
            for method in OPERATION_METHODS:
                op = item.get(method)
                if not isinstance(op, dict):
                    continue
                where = f"/paths/{path}/{method}"
                for i, p in enumerate(op.get("parameters") or []):
                    param_like(p, f"{where}/parameters/{i}")
                body = op.get("requestBody")
                if isinstance(body, dict) and "$ref" not in body:
                    media_map(body.get("content"), f"{where}/requestBody/content")
                for status, r in (op.get("responses") or {}).items():
                    response(r, f"{where}/responses/{status}")
        return found

    def check_schema_objects(self):
        schemas = self.schema_objects()
        for where, schema in schemas:
            try:
                jsonschema.Draft202012Validator.check_schema(schema)
            except jsonschema.exceptions.SchemaError as e:
                self.problem(f"schema at {where} is not valid JSON Schema 2020-12: {e.message}")
        return len(schemas)

    def check_paths_and_names(self):
        ids = {}
        tags = {t.get("name") for t in self.doc.get("tags") or [] if isinstance(t, dict)}
        schemes = set(((self.doc.get("components") or {}).get("securitySchemes") or {}).keys())
        for requirement in self.doc.get("security") or []:
            for name in requirement:
                if name not in schemes:
                    self.problem(f"top-level security names an unknown scheme {name!r}")
        for method, path, item, op in self.operations():
            name = f"{method} {path}"
            template = re.findall(r"\{([^{}/]+)\}", path)
            if len(set(template)) != len(template):
                self.problem(f"{path}: a path parameter appears twice")
            params = {}
            for p in (item.get("parameters") or []) + (op.get("parameters") or []):
                p = self.deref(p)
                if isinstance(p, dict):
                    params[(p.get("name"), p.get("in"))] = p  # operation-level ones override
            declared = {n for (n, where) in params if where == "path"}
            for missing in sorted(set(template) - declared):
                self.problem(f"{name}: {{{missing}}} is not declared as a path parameter")
            for extra in sorted(declared - set(template)):
                self.problem(f"{name}: path parameter {extra!r} is not in the template")
            for (n, where), p in params.items():
                if where == "path" and p.get("required") is not True:
                    self.problem(f"{name}: path parameter {n!r} is not required")
            op_id = op.get("operationId")
            if not op_id:
                self.problem(f"{name}: no operationId")
            elif op_id in ids:
                self.problem(f"{name}: operationId {op_id!r} also used by {ids[op_id]}")
            else:
                ids[op_id] = name
            if not op.get("summary") and not op.get("description"):
                self.problem(f"{name}: neither summary nor description")
            for tag in op.get("tags") or []:
                if tag not in tags:
                    self.problem(f"{name}: tag {tag!r} is not declared")
            for requirement in op.get("security") or []:
                for scheme in requirement:
                    if scheme not in schemes:
                        self.problem(f"{name}: security names an unknown scheme {scheme!r}")
            if not op.get("responses"):
                self.problem(f"{name}: no responses")

    # ---- answers against the document ---------------------------------------
    def operation(self, method, path):
        item = (self.doc.get("paths") or {}).get(path) or {}
        return item.get(method.lower())

    def documented_response(self, op, status):
        responses = op.get("responses") or {}
        for key in (str(status), f"{str(status)[0]}XX", "default"):
            if key in responses:
                return self.deref(responses[key])
        return None

    def validate(self, instance, schema, what):
        """Problems of `instance` against a document schema (refs resolved in the document)."""
        validator = jsonschema.Draft202012Validator(
            schema, resolver=self.resolver, format_checker=jsonschema.FormatChecker())
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        for error in errors[:5]:
            where = json_pointer(error.absolute_path)
            self.problem(f"{what}: at {where}: {error.message[:300]}")
        return not errors

    def header_value(self, value, schema):
        if isinstance(schema, dict) and schema.get("type") == "integer":
            try:
                return int(value)
            except ValueError:
                return value
        return value

    def expect(self, method, path, answer, statuses=None, what=None):
        """Checks `answer` of the documented operation (method, path template)
        against its documentation; returns the parsed JSON body or None."""
        self.checked_answers += 1
        what = what or f"{method} {path}"
        what = f"{what} -> {answer.status}"
        if statuses is not None and answer.status not in statuses:
            code, message = answer.error()
            self.problem(f"{what}: expected {sorted(statuses)} ({code}: {message})")
            return None
        op = self.operation(method, path)
        if op is None:
            self.problem(f"{what}: {method} {path} is not documented")
            return None
        response = self.documented_response(op, answer.status)
        if response is None:
            code, message = answer.error()
            self.problem(f"{what}: status not documented ({code}: {message})")
            return None
        for name, header in (response.get("headers") or {}).items():
            header = self.deref(header) or {}
            value = answer.headers.get(name)
            if value is None:
                if header.get("required"):
                    self.problem(f"{what}: documented header {name} is missing")
                continue
            if "schema" in header:
                self.validate(self.header_value(value, header["schema"]), header["schema"],
                              f"{what}: header {name}: {value!r}")
        content = response.get("content") or {}
        if not content:
            if answer.body:
                self.problem(f"{what}: documented without content, got {len(answer.body)} bytes")
            return None
        media = answer.media_type()
        matched = None
        for documented in content:
            d = documented.split(";")[0].strip().lower()
            if d == media or (d.endswith("/*") and media.startswith(d[:-1])):
                matched = documented
                break
        if matched is None:
            self.problem(f"{what}: Content-Type {media!r} is not documented ({sorted(content)})")
            return None
        schema = (content[matched] or {}).get("schema")
        if media == "application/json":
            try:
                body = answer.json()
            except ValueError as e:
                self.problem(f"{what}: body is not JSON: {e}")
                return None
            if schema is not None:
                self.validate(body, schema, f"{what}: body")
            return body
        return None

    # ---- probes: every documented route is served, nothing else is ----------
    def router_no_route(self):
        """The router's answer to a path that matches no route: (status, code, message)."""
        a = self.request("GET", f"/openapi-probe-{uuid.uuid4().hex}")
        code, message = a.error()
        if a.status != 404 or code != "not_found":
            self.problem(f"an unknown path answered {a.status} {code}: {message}, expected 404")
        return message

    def concrete(self, path):
        made_up = {"id": "openapiprobe-" + uuid.uuid4().hex[:12], "name": "no-such-file.txt"}
        return re.sub(r"\{([^{}/]+)\}", lambda m: made_up.get(m.group(1), "x"), path)

    def probe_documented(self, no_route):
        served = 0
        for method, path, _, op in self.operations():
            target = self.concrete(path)
            body = b"" if method in ("POST", "PUT", "PATCH") else None
            headers = {"Content-Type": "application/octet-stream"} if body is not None else None
            a = self.request(method, target, body=body, headers=headers)
            code, message = a.error()
            what = f"probe {method} {target}"
            if a.status == 405:
                self.problem(f"{what}: 405 ({message}): the server does not take this method")
                continue
            if a.status == 404 and message == no_route:
                self.problem(f"{what}: the router's 404 ({message}): no such route")
                continue
            if a.status == 401:
                self.problem(f"{what}: 401 although the probe sent a valid key (or none is set)")
                continue
            self.expect(method, path, a, what=what)
            served += 1
        return served

    def probe_undocumented(self, no_route):
        paths = self.doc.get("paths") or {}
        refused = 0
        for path, item in paths.items():
            documented = sorted(m.upper() for m in OPERATION_METHODS if m in item)
            allow = ", ".join(documented)
            target = self.concrete(path)
            for method in ROUTER_METHODS:
                if method in documented:
                    continue
                body = b"" if method in ("POST", "PUT", "PATCH") else None
                a = self.request(method, target, body=body)
                code, message = a.error()
                if a.status != 405 or code != "method_not_allowed":
                    self.problem(f"{method} {target} (not documented) answered {a.status} "
                                 f"{code}: {message}, expected 405")
                elif a.headers.get("Allow") != allow:
                    self.problem(f"{method} {target}: Allow is {a.headers.get('Allow')!r}, the "
                                 f"document lists {allow!r}")
                else:
                    refused += 1
                    self.check_against_component(a, "MethodNotAllowed", f"{method} {target}")
        for target in ("/v2/process", "/v1", "/v1/", "/v1/jobs/", "/v1/jobs/a/b/c",
                       "/v1/results/", "/assets/", "/assets/a/b", "/openapi.yaml", "/healthz/",
                       "/index.html", "/v1/process/x", "/v1/jobs/a%2Fb"):
            a = self.request("GET", target)
            code, message = a.error()
            if a.status != 404 or message != no_route:
                self.problem(f"GET {target} (no such path) answered {a.status} {code}: "
                             f"{message}, expected the router's 404")
            else:
                refused += 1
        return refused

    def check_against_component(self, answer, name, what):
        response = self.deref({"$ref": f"#/components/responses/{name}"})
        if response is None:
            self.problem(f"components.responses.{name} is missing")
            return
        for header, h in (response.get("headers") or {}).items():
            if (self.deref(h) or {}).get("required") and answer.headers.get(header) is None:
                self.problem(f"{what}: header {header} of {name} is missing")
        schema = response["content"]["application/json"]["schema"]
        self.validate(answer.json(), schema, f"{what}: body")

    # ---- security -----------------------------------------------------------
    def effective_security(self, op):
        return op["security"] if "security" in op else self.doc.get("security") or []

    def check_security(self):
        """With a key configured: open operations answer without one, the others 401."""
        checked = 0
        for method, path, _, op in self.operations():
            target = self.concrete(path)
            what = f"{method} {target} without a key"
            security = self.effective_security(op)
            open_ = not security or any(len(r) == 0 for r in security)
            body = b"" if method in ("POST", "PUT", "PATCH") else None
            a = self.request(method, target, body=body, key=False)
            if open_ and a.status == 401:
                self.problem(f"{what}: 401, but documented as open")
            elif not open_:
                if a.status != 401:
                    self.problem(f"{what}: {a.status}, expected 401 (documented as needing "
                                 "bearerAuth)")
                else:
                    self.expect(method, path, a, {401}, what)
                    if a.headers.get("WWW-Authenticate") != 'Bearer realm="pixpool"':
                        self.problem(f"{what}: WWW-Authenticate is "
                                     f"{a.headers.get('WWW-Authenticate')!r}")
            checked += 1
        a = self.request("GET", "/v1/backends",
                         headers={"Authorization": "Bearer not-the-key-0123456789"}, key=False)
        self.expect("GET", "/v1/backends", a, {401}, "GET /v1/backends with a wrong key")
        if 'error="invalid_token"' not in (a.headers.get("WWW-Authenticate") or ""):
            self.problem("a wrong key's 401 has no error=\"invalid_token\" challenge")
        a = self.request("GET", f"/openapi-probe-{uuid.uuid4().hex}", key=False)
        if a.status != 401:
            self.problem(f"an unknown path without a key answered {a.status}, expected 401")
        return checked

    # ---- real calls ---------------------------------------------------------
    def exercise(self):
        with open(IMAGES[0], "rb") as f:
            baboon = f.read()
        with open(IMAGES[1], "rb") as f:
            fruits = f.read()

        for path in ("/healthz", "/readyz", "/v1/backends", "/metrics"):
            self.expect("GET", path, self.request("GET", path), {200})
        a = self.request("HEAD", "/healthz")
        if a.status != 200 or a.body:
            self.problem(f"HEAD /healthz: {a.status} with {len(a.body)} bytes, expected 200 "
                         "and no body (HEAD is answered like GET)")

        page = self.request("GET", "/")
        self.expect("GET", "/", page, {200})
        etag = page.headers.get("ETag")
        if etag:
            self.expect("GET", "/", self.request("GET", "/", headers={"If-None-Match": etag}),
                        {304}, "GET / with If-None-Match")
        self.expect("GET", "/assets/{name}", self.request("GET", "/assets/chart.min.js"), {200},
                    "GET /assets/chart.min.js")
        self.expect("GET", "/assets/{name}", self.request("GET", "/assets/no-such.js"), {404},
                    "GET /assets/no-such.js")
        self.expect("GET", "/openapi.json", self.request("GET", "/openapi.json"), {200})

        # /v1/process: errors and images.
        raw = {"Content-Type": "image/jpeg"}
        a = self.request("POST", "/v1/process?ops=blur:5000", body=baboon, headers=raw)
        body = self.expect("POST", "/v1/process", a, {400}, "POST /v1/process?ops=blur:5000")
        if body and body["error"]["code"] != "invalid_ops":
            self.problem(f"ops=blur:5000: code {body['error']['code']}, expected invalid_ops")
        for query, status in (("?quality=0", 400), ("?format=gif", 400), ("?backend=gpu", 400),
                              ("?nope=1", 400), ("?ops=contour&ops=contour", 400)):
            self.expect("POST", "/v1/process",
                        self.request("POST", "/v1/process" + query, body=baboon, headers=raw),
                        {status}, f"POST /v1/process{query}")
        self.expect("POST", "/v1/process",
                    self.request("POST", "/v1/process", body=b"not an image", headers=raw),
                    {415}, "POST /v1/process (not an image)")
        self.expect("GET", "/v1/process",
                    self.request("GET", "/v1/process?url=http://127.0.0.1:1/x.jpg"), {403},
                    "GET /v1/process?url=(loopback)")
        for backend in ("tbb", "process"):
            a = self.request("POST", f"/v1/process?ops=blur:1,contour&format=png&backend={backend}",
                             body=baboon, headers=raw)
            self.expect("POST", "/v1/process", a, {200}, f"POST /v1/process (png, {backend})")
            if a.status == 200:
                if a.media_type() != "image/png" or not a.body.startswith(b"\x89PNG"):
                    self.problem(f"POST /v1/process format=png: got {a.media_type()}")
                if a.headers.get("X-Pixpool-Backend") != backend:
                    self.problem(f"X-Pixpool-Backend is {a.headers.get('X-Pixpool-Backend')!r}, "
                                 f"asked for {backend}")
        data, ctype = multipart([("image", "photo.jpg", baboon)])
        a = self.request("POST", "/v1/process?quality=80", body=data,
                         headers={"Content-Type": ctype})
        self.expect("POST", "/v1/process", a, {200}, "POST /v1/process (multipart)")
        if a.status == 200 and a.media_type() != "image/jpeg":
            self.problem(f"multipart JPEG came back as {a.media_type()}")
        data, ctype = multipart([("picture", "photo.jpg", baboon)])
        self.expect("POST", "/v1/process",
                    self.request("POST", "/v1/process", body=data, headers={"Content-Type": ctype}),
                    {400}, "POST /v1/process (multipart without image)")

        # A job: accepted, followed to its end, its events, results and archive.
        data, ctype = multipart([("image", "baboon.jpg", baboon), ("image", "fruits.jpg", fruits)])
        a = self.request("POST", "/v1/jobs?ops=blur:1,contour", body=data,
                         headers={"Content-Type": ctype})
        accepted = self.expect("POST", "/v1/jobs", a, {202}, "POST /v1/jobs")
        if accepted:
            job_id = accepted["id"]
            if a.headers.get("Location") != accepted["links"]["self"]:
                self.problem(f"POST /v1/jobs: Location {a.headers.get('Location')!r} is not "
                             f"links.self {accepted['links']['self']!r}")
            self.follow_job(job_id)
        self.expect("GET", "/v1/jobs/{id}", self.request("GET", "/v1/jobs/openapi-missing-job"),
                    {404}, "GET /v1/jobs/(missing)")

        # Batches: JSON of URLs (one refused by the SSRF guard) and a tar.
        urls = {"urls": ["http://127.0.0.1:1/x.jpg"], "quality": 80}
        a = self.request("POST", "/v1/batch", body=json.dumps(urls).encode(),
                         headers={"Content-Type": "application/json"})
        batch = self.expect("POST", "/v1/batch", a, {200}, "POST /v1/batch (JSON)")
        if batch:
            item = batch["items"][0]
            code = (item.get("error") or {}).get("code")
            if item.get("state") != "failed" or code != "source_forbidden":
                self.problem(f"POST /v1/batch: a loopback URL gave {item}")
        a = self.request("POST", "/v1/batch", body=json.dumps({"urls": [], "extra": 1}).encode(),
                         headers={"Content-Type": "application/json"})
        self.expect("POST", "/v1/batch", a, {400}, "POST /v1/batch (bad JSON body)")
        data, ctype = multipart([("image", "baboon.jpg", baboon)])
        a = self.request("POST", "/v1/batch?archive=tar&ops=contour", body=data,
                         headers={"Content-Type": ctype})
        self.expect("POST", "/v1/batch", a, {200}, "POST /v1/batch?archive=tar")
        if a.status == 200:
            self.check_tar(a.body, "POST /v1/batch?archive=tar")

    def follow_job(self, job_id):
        path = f"/v1/jobs/{job_id}"
        deadline = time.monotonic() + 60
        job = None
        while time.monotonic() < deadline:
            job = self.expect("GET", "/v1/jobs/{id}", self.request("GET", path), {200},
                              f"GET {path}")
            if not job or job["state"] != "running":
                break
            time.sleep(0.05)  # poll again, within the deadline
        if not job:
            return
        if job["state"] != "done":
            self.problem(f"GET {path}: state {job['state']!r} after waiting up to 60 s")
            return
        if job["totals"]["succeeded"] != len(job["items"]):
            self.problem(f"GET {path}: not every item succeeded: {job['items']}")

        # The finished job's events: every item with an id, then done.
        a = self.request("GET", path + "/events", headers={"Accept": "text/event-stream"})
        self.expect("GET", "/v1/jobs/{id}/events", a, {200}, f"GET {path}/events")
        if a.status == 200:
            events = self.parse_events(a.body.decode("utf-8"))
            items = [e for e in events if e["event"] == "item"]
            done = [e for e in events if e["event"] == "done"]
            if len(items) != len(job["items"]) or len(done) != 1 or events[-1]["event"] != "done":
                self.problem(f"GET {path}/events: {len(items)} item and {len(done)} done events "
                             f"for {len(job['items'])} items")
            for e in items:
                if not e.get("id"):
                    self.problem(f"GET {path}/events: an item event without id:")
                self.validate(json.loads(e["data"]), {"$ref": "#/components/schemas/Item"},
                              f"GET {path}/events: item data")
            for e in done:
                self.validate(json.loads(e["data"]), {"$ref": "#/components/schemas/Totals"},
                              f"GET {path}/events: done data")
            if items:
                last = items[-1]["id"]
                a = self.request("GET", path + "/events", headers={"Last-Event-ID": last})
                self.expect("GET", "/v1/jobs/{id}/events", a, {200}, "events with Last-Event-ID")
                resumed = self.parse_events(a.body.decode("utf-8"))
                if [e["event"] for e in resumed] != ["done"]:
                    self.problem("events resumed after the last item sent "
                                 f"{[e['event'] for e in resumed]}, expected only done")
            a = self.request("GET", path + "/events", headers={"Last-Event-ID": "not-a-cursor"})
            self.expect("GET", "/v1/jobs/{id}/events", a, {400}, "events with a bad Last-Event-ID")

        # Each output, whole and in part; a range past the end.
        for item in job["items"]:
            result = item.get("result")
            if not result:
                self.problem(f"GET {path}: item {item['index']} has no result link")
                continue
            a = self.request("GET", result)
            self.expect("GET", "/v1/results/{id}", a, {200}, f"GET {result}")
            if a.status == 200 and len(a.body) != item["bytes"]:
                self.problem(f"GET {result}: {len(a.body)} bytes, the item says {item['bytes']}")
            a = self.request("GET", result, headers={"Range": "bytes=0-99"})
            self.expect("GET", "/v1/results/{id}", a, {206}, f"GET {result} (Range)")
            if a.status == 206 and len(a.body) != 100:
                self.problem(f"GET {result} bytes=0-99: {len(a.body)} bytes")
            a = self.request("GET", result, headers={"Range": "bytes=99999999-"})
            self.expect("GET", "/v1/results/{id}", a, {416}, f"GET {result} (Range past the end)")
        self.expect("GET", "/v1/results/{id}", self.request("GET", "/v1/results/openapi-missing"),
                    {404}, "GET /v1/results/(missing)")

        a = self.request("GET", path + "/archive")
        self.expect("GET", "/v1/jobs/{id}/archive", a, {200}, f"GET {path}/archive")
        if a.status == 200:
            self.check_tar(a.body, f"GET {path}/archive")

        a = self.request("DELETE", path)
        cancelled = self.expect("DELETE", "/v1/jobs/{id}", a, {200}, f"DELETE {path}")
        if cancelled and cancelled.get("cancelled_now") != 0:
            self.problem(f"DELETE {path} of a finished job cancelled "
                         f"{cancelled.get('cancelled_now')} items")

    def parse_events(self, text):
        events = []
        for block in text.split("\n\n"):
            fields = {}
            for line in block.split("\n"):
                if not line or line.startswith(":"):
                    continue
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value
            if "event" in fields:
                events.append(fields)
        return events

    def check_tar(self, data, what):
        try:
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                members = tar.getmembers()
                if not members or members[0].name != "manifest.json":
                    self.problem(f"{what}: the tar does not start with manifest.json")
                    return
                manifest = json.load(tar.extractfile(members[0]))
        except (tarfile.TarError, ValueError) as e:
            self.problem(f"{what}: not a readable tar with a JSON manifest: {e}")
            return
        self.validate(manifest, {"$ref": "#/components/schemas/Job"}, f"{what}: manifest.json")

    # ---- all ----------------------------------------------------------------
    def run(self):
        a = self.request("GET", "/openapi.json", key=False)
        if a.status != 200 or a.media_type() != "application/json":
            self.problem(f"GET /openapi.json without a key: {a.status} {a.media_type()}")
            return
        self.doc = a.json()
        self.resolver = jsonschema.RefResolver(base_uri="", referrer=self.doc)
        self.check_structure()
        self.check_refs()
        schemas = self.check_schema_objects()
        self.check_paths_and_names()
        if self.problems:
            return  # probing with a broken document would only add noise
        no_route = self.router_no_route()
        served = self.probe_documented(no_route)
        refused = self.probe_undocumented(no_route)
        secured = self.check_security() if self.api_key else 0
        self.exercise()
        ops = sum(1 for _ in self.operations())
        self.summary = (f"{len(self.doc['paths'])} paths, {ops} operations, {schemas} schema "
                        f"objects valid; {served} operations served, {refused} undocumented "
                        f"methods/paths refused, {secured} security checks, "
                        f"{self.checked_answers} answers matched the document")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:8080")
    parser.add_argument("--api-key", help="an API key of the server, when it has keys")
    args = parser.parse_args()
    checker = Checker(args.url, args.api_key)
    try:
        checker.run()
    except (urllib.error.URLError, OSError) as e:
        checker.problem(f"cannot talk to {args.url}: {e}")
    if checker.problems:
        print(f"check_openapi: {len(checker.problems)} problem(s):", file=sys.stderr)
        for p in checker.problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    print(f"check_openapi: OK ({'with' if args.api_key else 'without'} API keys): "
          f"{checker.summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
