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
