// Package api holds optgate's HTTP API description: the OpenAPI document
// (openapi.yaml), embedded so that the gateway serves it at
// GET /v1/openapi.yaml.
package api

import _ "embed"

// OpenAPI is the OpenAPI document of the HTTP API (openapi.yaml).
//
//go:embed openapi.yaml
var OpenAPI []byte
