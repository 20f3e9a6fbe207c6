"""The registry service: register facts (residence, temporary residence, fastlege, the
organisation directory) and the patient's blocks; emergency access and the access log."""
