"""One router per resource; route functions stay thin and call the tenant's ``Engram``."""
