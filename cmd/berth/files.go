package main

import "github.com/spf13/cobra"

// addFilesCommands adds `berth files ...`.
func (a *app) addFilesCommands(root *cobra.Command) {}
