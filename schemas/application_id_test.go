package schemas

import (
	"strings"
	"testing"

	"github.com/invopop/validation"
)

// TestPlainIDIsWhatTheRulesAccept: the fast path of ValidateApplicationID
// accepts exactly what the contract's rules accept.
func TestPlainIDIsWhatTheRulesAccept(t *testing.T) {
	for _, id := range []string{"", "A", "A-1001", " ", "~", "a b", strings.Repeat("x", 64), strings.Repeat("x", 65),
		"é", strings.Repeat("é", 30), "tab\t", "\x7f", "nul\x00", "\xff", strings.Repeat("é", 33)} {
		rules := validation.Validate(id, applicationIDRules...) == nil
		if plainID(id) && !rules {
			t.Errorf("%q: the fast path accepts what the rules refuse", id)
		}
		if rules != (ValidateApplicationID(id) == nil) {
			t.Errorf("%q: rules %v, ValidateApplicationID %v", id, rules, ValidateApplicationID(id))
		}
	}
}
