"""Study stage kinds, one file each, in the explicit registry below."""
