"""What every part of the window shares: icons, theme colours and the small dialogs."""
