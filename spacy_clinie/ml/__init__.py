"""Model architectures: functions returning thinc Models; they never touch Doc annotations."""
