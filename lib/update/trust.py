# Owns what the boot part trusts (issue 15): the Ed25519 public key built into
# the firmware that a bundle must be signed with, and the version of this
# boot/recovery part (a bundle names the minimum it needs). Frozen into the
# custom firmware with the rest of update/, so an update never replaces it.
# As shipped there is no key: a pack trusts no bundle until it is given its
# owner's key, by the owner's firmware build (`make firmware OWNER_KEY=F.pub`:
# tools/frozen.py writes the key in this file's frozen copy) or at
# commissioning (`bmsctl commission --update-key F.pub`, physical presence;
# bms.auth.UPDATE_KEY, which wins over this one). The development key in
# tools/keys/ is the bench's only.
PUBLIC_KEY = None
RECOVERY_VERSION = 1  # tools/bmsctl/bundle.py RECOVERY_VERSION: bundles need at most this
