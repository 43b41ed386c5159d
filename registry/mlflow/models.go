package mlflow

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"mlservice/registry"
)

// ModelVersion is one version of a registered model.
type ModelVersion struct {
	Name    string
	Version string
	// Source is what the version was registered from: in MLflow 3 usually
	// models:/m-<id> (a logged model), else runs:/<run>/<path> or a storage URI.
	Source string
	RunID  string
	// ModelID is the logged model's id (m-...): from the answer's model_id,
	// which MLflow 3.17 leaves out, else from a models:/m-<id> Source. Where
	// the files are stored is not in the answer: see DownloadURI.
	ModelID     string
	Status      string // READY, PENDING_REGISTRATION, FAILED_REGISTRATION
	Description string
	Aliases     []string
	Tags        map[string]string
	// CreationTimestamp is in milliseconds since the epoch.
	CreationTimestamp int64
}

// RegisteredModel is a registered model's name, aliases and tags.
type RegisteredModel struct {
	Name        string
	Description string
	Aliases     map[string]string // alias → version
	Tags        map[string]string
	// CreationTimestamp is in milliseconds since the epoch (0 if the server
	// gave none).
	CreationTimestamp int64
}

type tagJSON struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

func tagMap(tags []tagJSON) map[string]string {
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		m[t.Key] = t.Value
	}
	return m
}

type modelVersionJSON struct {
	Name              string    `json:"name"`
	Version           string    `json:"version"`
	Source            string    `json:"source"`
	RunID             string    `json:"run_id"`
	ModelID           string    `json:"model_id"`
	Status            string    `json:"status"`
	Description       string    `json:"description"`
	Aliases           []string  `json:"aliases"`
	Tags              []tagJSON `json:"tags"`
	CreationTimestamp int64     `json:"creation_timestamp"`
}

func (v *ModelVersion) fromJSON(j modelVersionJSON) {
	*v = ModelVersion{
		Name: j.Name, Version: j.Version, Source: j.Source, RunID: j.RunID, ModelID: j.ModelID,
		Status: j.Status, Description: j.Description,
		Aliases: j.Aliases, Tags: tagMap(j.Tags), CreationTimestamp: j.CreationTimestamp,
	}
	if id, ok := strings.CutPrefix(j.Source, "models:/"); ok && v.ModelID == "" && strings.HasPrefix(id, "m-") && !strings.Contains(id, "/") {
		v.ModelID = id
	}
}

// RegisteredModel returns the model's aliases and tags.
func (c *Client) RegisteredModel(ctx context.Context, model string) (RegisteredModel, error) {
	var out struct {
		Model struct {
			Name              string    `json:"name"`
			Description       string    `json:"description"`
			Tags              []tagJSON `json:"tags"`
			CreationTimestamp int64     `json:"creation_timestamp"`
			Aliases           []struct {
				Alias   string `json:"alias"`
				Version string `json:"version"`
			} `json:"aliases"`
		} `json:"registered_model"`
	}
	if err := c.call(ctx, http.MethodGet, "registered-models/get", map[string]string{"name": model}, &out); err != nil {
		return RegisteredModel{}, err
	}
	m := RegisteredModel{Name: out.Model.Name, Description: out.Model.Description,
		Aliases: map[string]string{}, Tags: tagMap(out.Model.Tags), CreationTimestamp: out.Model.CreationTimestamp}
	for _, a := range out.Model.Aliases {
		m.Aliases[a.Alias] = a.Version
	}
	return m, nil
}

// State implements registry.Source with one call: in MLflow 3 a registered
// model carries its aliases and tags, and its creation time tells it from
// a model of the same name deleted before.
func (c *Client) State(ctx context.Context, model string) (registry.State, error) {
	m, err := c.RegisteredModel(ctx, model)
	if err != nil {
		return registry.State{}, err
	}
	st := registry.State{Aliases: m.Aliases, Tags: m.Tags}
	if m.CreationTimestamp != 0 {
		st.Generation = "created-" + strconv.FormatInt(m.CreationTimestamp, 10)
	}
	return st, nil
}

// ModelVersion returns one version.
func (c *Client) ModelVersion(ctx context.Context, model, version string) (ModelVersion, error) {
	return c.modelVersion(ctx, "model-versions/get", map[string]string{"name": model, "version": version})
}

// VersionByAlias returns the version an alias points at; registry.ErrNotFound
// when the alias is not set.
func (c *Client) VersionByAlias(ctx context.Context, model, alias string) (ModelVersion, error) {
	v, err := c.modelVersion(ctx, "registered-models/alias", map[string]string{"name": model, "alias": alias})
	var ae *APIError
	if errors.As(err, &ae) && isMissingAlias(ae, alias) {
		ae.kind = registry.ErrNotFound
	}
	return v, err
}

// isMissingAlias recognizes how MLflow reports an alias that is not set: 400
// INVALID_PARAMETER_VALUE "Registered model alias <alias> not found." (a
// missing model is a 404). Every other invalid-parameter answer stays a 400.
func isMissingAlias(e *APIError, alias string) bool {
	return e.Status == http.StatusBadRequest && e.Code == "INVALID_PARAMETER_VALUE" &&
		strings.Contains(strings.ToLower(e.Message), "alias "+strings.ToLower(alias)+" not found")
}

func (c *Client) modelVersion(ctx context.Context, endpoint string, params map[string]string) (ModelVersion, error) {
	var out struct {
		V modelVersionJSON `json:"model_version"`
	}
	var v ModelVersion
	if err := c.call(ctx, http.MethodGet, endpoint, params, &out); err != nil {
		return v, err
	}
	v.fromJSON(out.V)
	return v, nil
}

// SearchVersions returns every version of the model, oldest first.
func (c *Client) SearchVersions(ctx context.Context, model string) ([]ModelVersion, error) {
	filter := "name='" + strings.ReplaceAll(model, "'", `\'`) + "'"
	var all []ModelVersion
	for token := ""; ; {
		params := map[string]string{"filter": filter, "max_results": "1000"}
		if token != "" {
			params["page_token"] = token
		}
		var out struct {
			Versions []modelVersionJSON `json:"model_versions"`
			Next     string             `json:"next_page_token"`
		}
		if err := c.call(ctx, http.MethodGet, "model-versions/search", params, &out); err != nil {
			return nil, err
		}
		for _, j := range out.Versions {
			var v ModelVersion
			v.fromJSON(j)
			all = append(all, v)
		}
		if token = out.Next; token == "" {
			break
		}
	}
	sort.Slice(all, func(i, j int) bool {
		a, _ := strconv.Atoi(all[i].Version)
		b, _ := strconv.Atoi(all[j].Version)
		return a < b
	})
	return all, nil
}

// SetAlias points alias at version, moving it if it pointed elsewhere.
func (c *Client) SetAlias(ctx context.Context, model, alias, version string) error {
	return c.call(ctx, http.MethodPost, "registered-models/alias",
		map[string]string{"name": model, "alias": alias, "version": version}, nil)
}

// DeleteAlias removes alias. Deleting an alias that is not set succeeds, as
// it does in MLflow.
func (c *Client) DeleteAlias(ctx context.Context, model, alias string) error {
	return c.call(ctx, http.MethodDelete, "registered-models/alias",
		map[string]string{"name": model, "alias": alias}, nil)
}

// SetModelTag sets a registered-model tag.
func (c *Client) SetModelTag(ctx context.Context, model, key, value string) error {
	return c.call(ctx, http.MethodPost, "registered-models/set-tag",
		map[string]string{"name": model, "key": key, "value": value}, nil)
}

// DeleteModelTag removes a registered-model tag.
func (c *Client) DeleteModelTag(ctx context.Context, model, key string) error {
	return c.call(ctx, http.MethodDelete, "registered-models/delete-tag",
		map[string]string{"name": model, "key": key}, nil)
}

// DownloadURI returns where the version's files are, as the server resolves
// it: for a logged model (source models:/m-<id>) the logged model's artifact
// location, e.g. mlflow-artifacts:/1/models/m-<id>/artifacts.
func (c *Client) DownloadURI(ctx context.Context, model, version string) (string, error) {
	var out struct {
		URI string `json:"artifact_uri"`
	}
	err := c.call(ctx, http.MethodGet, "model-versions/get-download-uri",
		map[string]string{"name": model, "version": version}, &out)
	if err == nil && out.URI == "" {
		err = fmt.Errorf("mlflow: %s version %s has no download URI", model, version)
	}
	return out.URI, err
}

// Identity implements registry.Identifier: the version's download URI,
// which names its logged model (mlflow-artifacts:/1/models/m-<id>/artifacts),
// so a version number registered again stands for other files.
func (c *Client) Identity(ctx context.Context, model, version string) (string, error) {
	return c.DownloadURI(ctx, model, version)
}

// HasVersion returns nil if the model has the version, an error wrapping
// registry.ErrNotFound if it does not.
func (c *Client) HasVersion(ctx context.Context, model, version string) error {
	_, err := c.ModelVersion(ctx, model, version)
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusBadRequest {
		// MLflow answers 400 for a version that is not a number: no such version.
		return fmt.Errorf("%w: %s version %q: %s", registry.ErrNotFound, model, version, ae.Message)
	}
	return err
}
