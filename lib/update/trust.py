# Owns what the boot part trusts (issue 15): the Ed25519 public key a bundle
# must be signed with, and the version of this boot/recovery part (a bundle
# names the minimum it needs). Frozen into the custom firmware with the rest
# of update/, so an update never replaces it. The key here is the
# DEVELOPMENT key (tools/keys/dev-ed25519.pub): anyone can sign with it. A
# pack in the field must be built with its owner's key in its place at
# commissioning (no build step does that yet: edit this line), and then
# trusts no other.
PUBLIC_KEY = bytes.fromhex("d75d1eaaaa2995a3c385a69532802b593febf9fc2ea7a8d952796f16f12e11da")
RECOVERY_VERSION = 1  # tools/bmsctl/bundle.py RECOVERY_VERSION: bundles need at most this
