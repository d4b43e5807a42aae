"""Writes Sources/TollgateAdmin/AdminOpenAPI.swift: the admin API's OpenAPI 3.1 document, kept here
as data so the Swift source holds exactly one copy. Run after changing the API; the integration
test runs schemathesis against the document the binary serves."""
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ref = lambda name: {"$ref": f"#/components/schemas/{name}"}  # noqa: E731
problem = {"description": "A problem (RFC 9457)", "content": {"application/problem+json": {"schema": ref("Problem")}}}
def ok(schema, code="200", desc="OK"):
    return {code: {"description": desc, "content": {"application/json": {"schema": schema}}}}
def authed(responses, scope):
    r = dict(responses)
    for code in ("401", "403"):
        r[code] = problem
    return {"security": [{"adminToken": [scope]}], "responses": r}
string_list = {"type": "array", "items": {"type": "string"}}
word_list = {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "^[^ ]+$"}}
duration = {"type": "string", "pattern": "^[1-9][0-9]{0,8}(ms|s|m|h|d)$", "description": "a duration such as 90d"}
nullable = lambda t: {"type": [t, "null"]}  # noqa: E731
time_or_null = {"type": ["string", "null"]}
key_schema = {"type": "object", "required": ["id", "kind", "name", "owner", "scopes", "routes", "state", "uses", "created_at"],
              "properties": {"id": {"type": "string"}, "kind": {"enum": ["api", "install"]}, "name": {"type": "string"},
                             "owner": {"type": "string"}, "scopes": string_list, "routes": string_list,
                             "state": {"enum": ["active", "revoked", "expired", "exhausted"]}, "uses": {"type": "integer"},
                             "created_at": {"type": "string"}, "max_uses": nullable("integer"), "expires_at": time_or_null,
                             "last_used_at": time_or_null, "revoked_at": time_or_null, "replaced_by": time_or_null}}
key_created = json.loads(json.dumps(key_schema))
key_created["required"] = key_created["required"] + ["key"]
key_created["properties"]["key"] = {"type": "string", "pattern": "^tg_(live|inst)_"}
client = {"type": "object", "required": ["client_id", "name", "scopes", "created_at"],
          "properties": {"client_id": {"type": "string"}, "name": {"type": "string"}, "scopes": string_list,
                         "created_at": {"type": "string"}, "revoked_at": time_or_null}}
id_param = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
ban_id_param = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
IPV4 = r"((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
H = "[0-9a-fA-F]{1,4}"
IPV6 = ("(" + "|".join([f"({H}:){{7}}{H}", f"({H}:){{1,7}}:", f"({H}:){{1,6}}:{H}", f"({H}:){{1,5}}(:{H}){{1,2}}",
                       f"({H}:){{1,4}}(:{H}){{1,3}}", f"({H}:){{1,3}}(:{H}){{1,4}}", f"({H}:){{1,2}}(:{H}){{1,5}}",
                       f"{H}:((:{H}){{1,6}})", f":((:{H}){{1,7}}|:)"]) + ")")
ban_values = {
    "address": f"^({IPV4}|{IPV6})$",
    "prefix": f"^({IPV4}/(3[0-2]|[12]?[0-9])|{IPV6}/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))$",
    "key": "^[A-Za-z0-9]{4,64}$",
    "session": "^[!-+\\-.-:<-~]{8,128}$",
    "domain": "^([A-Za-z0-9]([A-Za-z0-9-]{0,40}[A-Za-z0-9])?\\.){1,4}[A-Za-z]([A-Za-z0-9-]{0,40}[A-Za-z0-9])?$",
}
ban = {"type": "object", "required": ["id", "kind", "value", "reason", "created_at", "expires_at", "created_by"],
       "properties": {"id": {"type": "integer"}, "kind": {"enum": list(ban_values)}, "value": {"type": "string"},
                      "reason": {"type": "string"}, "created_at": {"type": "string"}, "expires_at": time_or_null,
                      "created_by": {"type": "string"}}}
ban_request = {"type": "object", "additionalProperties": False, "required": ["kind", "value"],
               "properties": {"kind": {"enum": list(ban_values)}, "value": {"type": "string"},
                              "duration_seconds": {"type": "integer", "minimum": 1, "maximum": 31622400},
                              "reason": {"type": "string", "maxLength": 200}},
               "oneOf": [{"properties": {"kind": {"const": k}, "value": {"pattern": p}}} for k, p in ban_values.items()]}
name_param = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
doc = {
    "openapi": "3.1.0",
    "info": {"title": "Tollgate admin API", "version": "1",
             "description": "The operators' API on the admin listener. Tokens: tollgate admin-tokens create --scopes read,write,keys."},
    "components": {
        "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer", "description": "tg_adm_… with scopes read, write, keys"}},
        "schemas": {
            "Problem": {"type": "object", "required": ["type", "title", "status", "request_id"],
                        "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                                       "detail": {"type": "string"}, "request_id": {"type": "string"},
                                       "errors": {"type": "array", "items": {"type": "object"}}}},
            "Status": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
            "Key": key_schema, "KeyCreated": key_created, "Client": client, "Ban": ban, "BanRequest": ban_request,
            "ConfigIssue": {"type": "object", "required": ["path", "line", "message"],
                            "properties": {"path": {"type": "string"}, "line": nullable("integer"), "message": {"type": "string"}}},
            "ConfigVerdict": {"type": "object", "required": ["valid", "errors", "warnings"],
                              "properties": {"valid": {"type": "boolean"}, "errors": {"type": "array", "items": ref("ConfigIssue")},
                                             "warnings": {"type": "array", "items": ref("ConfigIssue")}}},
            "KeyRequest": {"type": "object", "additionalProperties": False, "required": ["name"],
                           "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 100},
                                          "owner": {"type": "string", "minLength": 1, "maxLength": 200}, "scopes": word_list,
                                          "routes": {"type": "array", "items": ref("RouteName")},
                                          "expires": duration, "max_uses": {"type": "integer", "minimum": 1, "maximum": 1000000000000},
                                          "kind": {"enum": ["api", "install"]}}},
            "RouteName": {"type": "string", "description": "replaced by the config's route names when served"},
            "ClientRequest": {"type": "object", "additionalProperties": False, "required": ["name"],
                              "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 100}, "scopes": word_list}},
        },
    },
    "paths": {
        "/livez": {"get": {"summary": "The process is alive", "responses": ok(ref("Status"))}},
        "/readyz": {"get": {"summary": "The public listener is bound", "responses": {**ok(ref("Status")), "503": problem}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "Prometheus text format",
                                                                                     "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/v1/routes": {"get": {"summary": "Routes and whether they are paused", **authed({**ok({"type": "object", "required": ["routes"],
            "properties": {"routes": {"type": "array", "items": {"type": "object", "required": ["name", "method", "path", "kind", "paused"],
                "properties": {"name": {"type": "string"}, "method": {"type": "string"}, "path": {"type": "string"},
                               "kind": {"enum": ["upstream", "file", "issue_client_key", "send_verification"]}, "upstream_host": nullable("string"),
                               "auth": string_list, "policies": string_list, "paused": {"type": "boolean"}}}}}}), "503": problem}, "read")}},
        "/v1/routes/{name}/pause": {"post": {"summary": "Stop upstream calls of a route (all: every route)", "parameters": [name_param],
            **authed({**ok({"type": "object", "required": ["route", "paused"], "properties": {"route": {"type": "string"},
                                                                                        "paused": {"type": "boolean"}}}),
                      "404": problem, "503": problem}, "write")}},
        "/v1/routes/{name}/resume": {"post": {"summary": "Allow upstream calls again", "parameters": [name_param],
            **authed({**ok({"type": "object", "required": ["route", "paused"], "properties": {"route": {"type": "string"},
                                                                                        "paused": {"type": "boolean"}}}),
                      "404": problem, "503": problem}, "write")}},
        "/v1/budgets": {"get": {"summary": "Budgets with their largest totals", **authed(ok({"type": "object", "required": ["budgets"],
            "properties": {"budgets": {"type": "array", "items": {"type": "object", "required": ["name", "scope", "period", "limit", "resets_at", "totals"],
                "properties": {"name": {"type": "string"}, "scope": {"type": "string"}, "period": {"type": "string"},
                               "limit": {"type": "string"}, "resets_at": {"type": "string"},
                               "totals": {"type": "array", "items": {"type": "object", "required": ["key", "used", "remaining"],
                                   "properties": {"key": {"type": "string"}, "used": {"type": "string"}, "remaining": {"type": "string"}}}}}}}}}), "read")}},
        "/v1/usage": {"get": {"summary": "Usage grouped by route, client, day, reason, key or email domain",
            "parameters": [{"name": "by", "in": "query", "schema": {"enum": ["route", "client", "day", "reason", "key", "domain"]}},
                           {"name": "since", "in": "query", "schema": duration}],
            **authed({**ok({"type": "object", "required": ["by", "since", "lines"], "properties": {"by": {"type": "string"},
                "since": {"type": "string"}, "lines": {"type": "array", "items": {"type": "object",
                "required": ["key", "calls", "spent_micros", "cache_hits", "refusals"],
                "properties": {"key": {"type": "string"}, "calls": {"type": "integer"}, "spent_micros": {"type": "integer"},
                               "cache_hits": {"type": "integer"}, "refusals": {"type": "integer"}, "uses": nullable("integer"),
                               "verification": {"type": ["object", "null"], "required": ["requested", "confirmed", "addresses", "blocked_until"],
                                   "properties": {"requested": {"type": "integer"}, "confirmed": {"type": "integer"},
                                                  "addresses": {"type": "integer"}, "blocked_until": nullable("string")}}}}}}}),
                      "422": problem, "503": problem}, "read")}},
        "/v1/keys": {
            "get": {"summary": "Every key (never the key itself)", **authed({**ok({"type": "object", "required": ["keys"],
                "properties": {"keys": {"type": "array", "items": ref("Key")}}}), "503": problem}, "read")},
            "post": {"summary": "Create a key; the answer is the only time it is shown",
                     "requestBody": {"required": True, "content": {"application/json": {"schema": ref("KeyRequest")}}},
                     **authed({**ok(ref("KeyCreated"), "201", "Created"), "409": problem, "422": problem, "503": problem}, "keys")}},
        "/v1/keys/{id}": {"get": {"summary": "One key", "parameters": [id_param],
                                  **authed({**ok(ref("Key")), "404": problem, "503": problem}, "read")}},
        "/v1/keys/{id}/revoke": {"post": {"summary": "Revoke a key (in force within a second)", "parameters": [id_param],
                                          **authed({**ok(ref("Key")), "404": problem, "409": problem, "503": problem}, "keys")}},
        "/v1/keys/{id}/rotate": {"post": {"summary": "A successor key (shown once); the old one expires after overlap (default 24h)",
            "parameters": [id_param],
            "requestBody": {"required": False, "content": {"application/json": {"schema": {"type": "object", "additionalProperties": False,
                "properties": {"overlap": duration}}}}},
            **authed({**ok(ref("KeyCreated"), "201", "Created"), "404": problem, "409": problem, "422": problem, "503": problem}, "keys")}},
        "/v1/keys/{id}/reactivate": {"post": {"summary": "Lift a key's revocation", "parameters": [id_param],
                                              **authed({**ok(ref("Key")), "404": problem, "409": problem, "503": problem}, "keys")}},
        "/v1/clients": {
            "get": {"summary": "OAuth clients", **authed({**ok({"type": "object", "required": ["clients"],
                "properties": {"clients": {"type": "array", "items": ref("Client")}}}), "503": problem}, "read")},
            "post": {"summary": "Register an OAuth client; the secret is shown once",
                     "requestBody": {"required": True, "content": {"application/json": {"schema": ref("ClientRequest")}}},
                     **authed({**ok({"type": "object", "required": ["client_id", "client_secret", "scopes"],
                                     "properties": {"client_id": {"type": "string"}, "client_secret": {"type": "string"}, "scopes": string_list}},
                                    "201", "Created"), "409": problem, "422": problem, "503": problem}, "keys")}},
        "/v1/clients/{id}/revoke": {"post": {"summary": "Revoke a client and its unexpired tokens", "parameters": [id_param],
            **authed({**ok({"type": "object", "required": ["client_id", "revoked"], "properties": {"client_id": {"type": "string"},
                                                                                             "revoked": {"type": "boolean"}}}),
                      "404": problem, "503": problem}, "keys")}},
        "/v1/bans": {
            "get": {"summary": "Bans in force", **authed({**ok({"type": "object", "required": ["bans"],
                "properties": {"bans": {"type": "array", "items": ref("Ban")}}}), "503": problem}, "read")},
            "post": {"summary": "Ban an address, network, key, session or email domain (in force at once on this gateway, within a second on others)",
                     "requestBody": {"required": True, "content": {"application/json": {"schema": ref("BanRequest")}}},
                     **authed({**ok(ref("Ban"), "201", "Created"), "422": problem, "503": problem}, "write")}},
        "/v1/bans/{id}": {"delete": {"summary": "End a ban now", "parameters": [ban_id_param],
            **authed({**ok({"type": "object", "required": ["id", "removed"], "properties": {"id": {"type": "integer"},
                                                                                      "removed": {"type": "boolean"}}}),
                      "404": problem, "503": problem}, "write")}},
        "/v1/config/validate": {"post": {"summary": "Check a candidate config (YAML text) without applying it",
            "requestBody": {"required": True, "content": {"text/plain": {"schema": {"type": "string", "minLength": 1}}}},
            **authed({**ok(ref("ConfigVerdict")), "422": problem}, "write")}},
        "/v1/config/reload": {"post": {"summary": "Read the config file again and apply it (nothing changes if it is invalid)",
            **authed({**ok({"type": "object", "required": ["reloaded", "warnings"], "properties": {
                "reloaded": {"const": True}, "warnings": {"type": "array", "items": ref("ConfigIssue")}}}),
                      "422": problem}, "write")}},
        "/v1/signups": {"post": {"summary": "Report completed sign-ups (for the calls-per-sign-up ratio and its alert)",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object", "additionalProperties": False,
                "properties": {"count": {"type": "integer", "minimum": 1, "maximum": 1000}}}}}},
            **authed({**ok({"type": "object", "required": ["counted"], "properties": {"counted": {"type": "integer"}}}),
                      "422": problem}, "write")}},
        "/v1/audit": {"get": {"summary": "The audit log of admin writes, newest first",
            "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
            **authed({**ok({"type": "object", "required": ["entries"], "properties": {"entries": {"type": "array", "items": {"type": "object",
                "required": ["at", "actor", "action", "target", "address", "outcome"],
                "properties": {k: {"type": "string"} for k in ["at", "actor", "action", "target", "address", "outcome"]}}}}}),
                      "422": problem, "503": problem}, "read")}},
    },
}
text = json.dumps(doc, separators=(",", ":"), sort_keys=False)
route_placeholder = json.dumps(doc["components"]["schemas"]["RouteName"], separators=(",", ":"))
swift = ('import Foundation\nimport TollgateCore\n\n/// The admin API\'s OpenAPI 3.1 document, served at `/openapi.json`. Generated by\n'
         '/// scripts/gen_openapi.py (edit that, not this); schemathesis checks the running binary against it.\n'
         'enum AdminOpenAPI {\n'
         '    /// The document with the config\'s route names as the values `routes` may hold.\n'
         '    static func document(routes: [String]) -> String {\n'
         '        let names = JSONValue.array(routes.map { .string($0) }).serialized\n'
         '        return template.replacingOccurrences(of: #"' + route_placeholder + '"#, with: #"{"enum":"# + names + "}")\n'
         '    }\n\n'
         '    static let template = #"""\n' + text + '\n"""#\n}\n')
(ROOT / "Sources" / "TollgateAdmin" / "AdminOpenAPI.swift").write_text(swift)
