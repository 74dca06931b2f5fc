// compose-config loads a Compose project the way `docker compose config --format json` does and
// prints the normalised model, so the repository's compose files can be validated without a Docker
// engine. It uses compose-spec/compose-go (the loader Docker Compose itself is built on) and
// reproduces the option order of docker/compose (pkg/compose/loader.go buildProjectOptions and
// cmd/compose/config.go ToProjectOptions): OS environment first, then the --env-file files or the
// project directory's .env, COMPOSE_FILE, default file discovery, COMPOSE_PROFILES, interpolation,
// schema validation, normalisation, consistency checks and path resolution.
//
// Exit status: 0 with the JSON model on stdout; 1 with the loader's error on stderr; 2 on bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// stringList is a repeatable flag (-f a -f b), like docker compose's StringArray flags.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

type options struct {
	files          stringList
	envFiles       stringList
	profiles       stringList
	projectDir     string
	projectName    string
	format         string
	output         string
	quiet          bool
	noInterpolate  bool
	noNormalize    bool
	noResolvePaths bool
	noConsistency  bool
	services       []string
}

func parseArgs(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("compose-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: compose-config [flags] [SERVICE...]\n\n"+
			"Prints the project as `docker compose config --format json` would.\n\n")
		fs.PrintDefaults()
	}
	fs.Var(&o.files, "f", "compose file (repeatable; default: COMPOSE_FILE, then compose.yaml/docker-compose.yml discovery)")
	fs.Var(&o.files, "file", "same as -f")
	fs.Var(&o.envFiles, "env-file", "environment file (repeatable; default: COMPOSE_ENV_FILES, then <project dir>/.env)")
	fs.Var(&o.profiles, "profile", "profile to enable (repeatable; default: COMPOSE_PROFILES)")
	fs.StringVar(&o.projectDir, "project-directory", "", "project directory (default: directory of the first compose file)")
	fs.StringVar(&o.projectName, "p", "", "project name (default: `name:` in the file, COMPOSE_PROJECT_NAME, or the directory)")
	fs.StringVar(&o.projectName, "project-name", "", "same as -p")
	fs.StringVar(&o.format, "format", "json", "output format: json or yaml")
	fs.StringVar(&o.output, "o", "", "write to this file instead of stdout")
	fs.BoolVar(&o.quiet, "q", false, "only validate, print nothing")
	fs.BoolVar(&o.quiet, "quiet", false, "same as -q")
	fs.BoolVar(&o.noInterpolate, "no-interpolate", false, "do not interpolate variables")
	fs.BoolVar(&o.noNormalize, "no-normalize", false, "do not normalise the model")
	fs.BoolVar(&o.noResolvePaths, "no-path-resolution", false, "do not resolve file paths")
	fs.BoolVar(&o.noConsistency, "no-consistency", false, "skip the model consistency checks")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.format != "json" && o.format != "yaml" {
		return nil, fmt.Errorf("unsupported format %q (json or yaml)", o.format)
	}
	// docker compose reads COMPOSE_ENV_FILES as the default of --env-file (cmd/compose/compose.go).
	if len(o.envFiles) == 0 {
		for _, f := range strings.Split(os.Getenv("COMPOSE_ENV_FILES"), ",") {
			if f = strings.TrimSpace(f); f != "" {
				o.envFiles = append(o.envFiles, f)
			}
		}
	}
	o.services = fs.Args()
	return o, nil
}

// projectOptions mirrors docker compose's option order; the order matters because the first
// source to set a variable wins (OS environment over env files) and because .env is read twice:
// once from the working directory and again once COMPOSE_FILE has fixed the project directory.
func projectOptions(o *options) (*cli.ProjectOptions, error) {
	fns := []cli.ProjectOptionsFn{
		// `docker compose config` options (cmd/compose/config.go ToProjectOptions).
		cli.WithInterpolation(!o.noInterpolate),
		cli.WithResolvedPaths(!o.noResolvePaths),
		cli.WithNormalization(!o.noNormalize),
		cli.WithConsistency(!o.noConsistency),
		cli.WithDefaultProfiles(o.profiles...),
		cli.WithDiscardEnvFile,
		// Project loading (pkg/compose/loader.go buildProjectOptions).
		cli.WithWorkingDirectory(o.projectDir),
		cli.WithOsEnv,
	}
	if _, present := os.LookupEnv("PWD"); !present {
		if pwd, err := os.Getwd(); err == nil {
			fns = append(fns, cli.WithEnv([]string{"PWD=" + pwd}))
		}
	}
	fns = append(fns,
		cli.WithEnvFiles(o.envFiles...),
		cli.WithDotEnv,
		cli.WithConfigFileEnv,
		cli.WithDefaultConfigPath,
		cli.WithEnvFiles(o.envFiles...),
		cli.WithDotEnv,
		cli.WithDefaultProfiles(o.profiles...),
		cli.WithName(o.projectName),
	)
	return cli.NewProjectOptions(o.files, fns...)
}

func load(ctx context.Context, o *options) (*types.Project, error) {
	po, err := projectOptions(o)
	if err != nil {
		return nil, err
	}
	project, err := po.LoadProject(ctx)
	if err != nil {
		return nil, err
	}
	// Post-processing as in docker compose (postProcessProject + runConfigInterpolate).
	if project.Name == "" {
		return nil, errors.New("project name can't be empty. Use ProjectName option to set a valid name")
	}
	if project, err = project.WithServicesEnabled(o.services...); err != nil {
		return nil, err
	}
	if project, err = project.WithSelectedServices(o.services); err != nil {
		return nil, err
	}
	project = project.WithoutUnnecessaryResources()
	if project, err = project.WithServicesEnvironmentResolved(true); err != nil {
		return nil, err
	}
	if !o.noConsistency {
		if err = project.CheckContainerNameUnicity(); err != nil {
			return nil, err
		}
	}
	return project, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	project, err := load(context.Background(), o)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	var content []byte
	if o.format == "yaml" {
		content, err = project.MarshalYAML()
	} else {
		content, err = project.MarshalJSON()
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if o.quiet {
		return 0
	}
	if o.output != "" {
		if err = os.WriteFile(o.output, content, 0o644); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	}
	if _, err = stdout.Write(content); err != nil {
		return 1
	}
	if len(content) > 0 && content[len(content)-1] != '\n' {
		_, _ = io.WriteString(stdout, "\n")
	}
	return 0
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
