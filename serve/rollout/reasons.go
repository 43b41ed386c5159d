package rollout

import (
	"fmt"

	"mlservice/registry"
	"mlservice/serve/models"
)

// mayDecide is the decision record's rule for admin actions (issue 15): only
// a version that gives reasons for its declines may decide for applicants
// (champion, challenger); any version may be shadow. The refusal is a
// VerifyError (409) naming why; nothing is changed.
func (c *Controller) mayDecide(variant registry.Variant, v *models.Version) error {
	if variant == registry.Shadow || c.cfg.AllowWithoutReasons || v.NoReasons == nil {
		return nil
	}
	return &VerifyError{Err: fmt.Errorf("version %s may not be %s: %w", v.Number, variant, v.NoReasons)}
}

// mayServe is mayDecide for the versions the registry's aliases name
// (start-up, polls, webhooks, an alias moved in MLflow's UI, where no admin
// action checked it): one that may not decide is refused as a failed load
// is, so what was serving keeps serving, and it is not loaded again until
// the registry moves on.
func (c *Controller) mayServe(src registry.Source, variant registry.Variant, v *models.Version) error {
	if err := c.mayDecide(variant, v); err != nil {
		return c.reject(c.liveKey(src, v.Number), variant, v.Number, models.ReasonReasons, err)
	}
	return nil
}
