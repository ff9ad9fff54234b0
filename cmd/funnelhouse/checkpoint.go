package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/funnelhouse/funnelhouse/pipeline/status"
)

func checkpointCmd(ctx context.Context, args []string) error {
	if len(args) == 0 || (args[0] != "show" && args[0] != "discard") {
		return errors.New("want `checkpoint show --partition N` or `checkpoint discard --partition N --yes` (see --help of each)")
	}
	action := args[0]
	fs := newFlagSet("checkpoint "+action, map[string]string{
		"show":    "Show a partition's stored state: its checkpoint's epoch and age, visitor rows, bytes, and whether a\nmember can restore it (and why not). Takes run's flags (and FUNNELHOUSE_* variables).",
		"discard": "Delete a partition's stored state (checkpoint and visitor rows), e.g. one that cannot be restored.\nThe next owner then rebuilds it from the earliest records the topics still hold; rows written before\nreplace themselves. Stop the group's members first: the command refuses while the group has members.",
	}[action])
	var f pipelineFlags
	f.register(fs, true)
	partition := fs.Int("partition", -1, "the partition `number`")
	yes := fs.Bool("yes", false, "discard: really delete the state")
	if err := parseWithEnv(fs, args[1:]); err != nil {
		return err
	}
	if *partition < 0 {
		return errors.New("--partition is required")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	conn, db, err := f.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if action == "show" {
		c, err := status.ReadCheckpoint(ctx, conn, db, f.cfg.Group, int32(*partition))
		if err != nil {
			return err
		}
		c.WriteText(os.Stdout)
		return nil
	}
	if !*yes {
		return errors.New("discard deletes the partition's state: give --yes")
	}
	if err := groupIsEmpty(ctx, &f); err != nil {
		return err
	}
	if err := status.DiscardCheckpoint(ctx, conn, db, f.cfg.Group, int32(*partition)); err != nil {
		return err
	}
	fmt.Printf("partition %d: state of group %s deleted; its next owner starts from the earliest records\n", *partition, f.cfg.Group)
	return nil
}

// groupIsEmpty refuses while the consumer group has members: a running
// owner would write the state again.
func groupIsEmpty(ctx context.Context, f *pipelineFlags) error {
	adm, closeAdm, err := f.admin()
	if err != nil {
		return err
	}
	defer closeAdm()
	groups, err := adm.DescribeGroups(ctx, f.cfg.Group)
	if err != nil {
		return wrapBrokers(f, err)
	}
	if n := len(groups[f.cfg.Group].Members); n > 0 {
		return fmt.Errorf("group %s has %d member(s): stop them first (with --instance-id, also wait --session-timeout)", f.cfg.Group, n)
	}
	return nil
}
