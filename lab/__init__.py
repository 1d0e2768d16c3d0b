"""The lab: a local twin of an SSO domain (vcsim + appliance REST twin). The product never imports it."""
