package gateway

import (
	"fmt"
	"strings"
	"time"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/consent/keyword"
	"github.com/optgate/optgate/smpp"
)

// Tenant is a customer of the gateway at run time.
type Tenant struct {
	ID       string
	cfg      TenantConfig
	accounts []*Account
	idx      uint16 // 1-based position in Gateway.tenantList
}

func (g *Gateway) tenantAt(i uint16) *Tenant {
	if i == 0 || int(i) > len(g.tenantList) {
		return nil
	}
	return g.tenantList[i-1]
}

func (g *Gateway) accountAt(i uint16) *Account {
	if i == 0 || int(i) > len(g.acctList) {
		return nil
	}
	return g.acctList[i-1]
}

// ConsentTenants converts the tenants of a config for the consent store.
func ConsentTenants(cfg *Config) ([]consent.TenantConfig, error) {
	out := make([]consent.TenantConfig, 0, len(cfg.Tenants))
	for _, t := range cfg.Tenants {
		mode, err := keyword.ParseMode(t.KeywordMode)
		if err != nil {
			return nil, fmt.Errorf("tenant %s: %w", t.ID, err)
		}
		kc := keyword.Config{Mode: mode, Remove: t.KeywordsDel, Enable: t.KeywordsOn}
		for _, k := range t.KeywordsAdd {
			cl, err := keyword.ParseClass(k.Class)
			if err != nil {
				return nil, fmt.Errorf("tenant %s: keyword %q: %w", t.ID, k.Word, err)
			}
			kc.Add = append(kc.Add, keyword.Entry{Word: k.Word, Class: cl, Lang: k.Lang})
		}
		tc := consent.TenantConfig{
			ID: t.ID, Brand: t.Brand, HelpContact: t.HelpContact, DefaultLang: t.DefaultLang, DefaultRegion: t.DefaultRegion,
			Scope: consent.Scope(t.Scope), CrossChannel: t.CrossChannel, Attestation: consent.AttestationMode(t.Attestation),
			MaxPrompts: t.MaxPrompts, HeldTTL: t.HeldTTL, MaxLength: t.MaxLength, ArchiveAfter: t.ArchiveAfter, Keywords: kc,
		}
		switch t.RepeatConfirm {
		case "":
		case "off":
			tc.RepeatConfirmWindow = consent.RepeatConfirmAlways
		default:
			d, err := time.ParseDuration(t.RepeatConfirm)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("tenant %s: repeat_confirm_window %q: a duration such as 24h, or off", t.ID, t.RepeatConfirm)
			}
			tc.RepeatConfirmWindow = d
		}
		if len(t.Templates) > 0 {
			tc.Templates = map[string]keyword.Templates{}
			for lang, tp := range t.Templates {
				tc.Templates[lang] = keyword.Templates{OptOut: tp.OptOut, MarketingOptOut: tp.MarketingOptOut, OptIn: tp.OptIn, Help: tp.Help,
					AttestationPrompt: tp.AttestationPrompt, Reprompt: tp.Reprompt, AttestationConfirm: tp.AttestationConfirm,
					Disclaimer: tp.Disclaimer}
			}
		}
		out = append(out, tc)
	}
	return out, nil
}

// addTenants builds the run-time tenants and upstream accounts of cfg and
// their indexes (by token, number, system_id).
func (g *Gateway) addTenants(cfg *Config) {
	for _, tc := range cfg.Tenants {
		t := &Tenant{ID: tc.ID, cfg: tc}
		g.tenants[t.ID] = t
		g.tenantList = append(g.tenantList, t)
		t.idx = uint16(len(g.tenantList))
		if tc.APIToken != "" {
			g.byToken[tc.APIToken] = t
		}
		for _, n := range tc.Numbers {
			g.byNumber[n] = t
			g.ourNumbers[strings.TrimPrefix(n, "+")] = n
		}
	}
	for _, ac := range cfg.Accounts {
		t := g.tenants[ac.Tenant]
		a := &Account{cfg: ac, tenant: t}
		g.acctList = append(g.acctList, a)
		a.idx = uint16(len(g.acctList))
		a.smpp = &smpp.Account{ID: ac.SystemID, Window: ac.Window, Rate: ac.Rate, MaxBinds: ac.MaxBinds, Data: a}
		g.accounts[ac.SystemID] = a
		t.accounts = append(t.accounts, a)
	}
}
