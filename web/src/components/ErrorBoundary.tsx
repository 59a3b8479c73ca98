// Keeps one broken panel or page (say, a plugin answering an unexpected shape) from blanking the dashboard.
import { Component, type ErrorInfo, type ReactNode } from "react";
import Alert from "@mui/material/Alert";
import i18n from "../i18n";

interface Props {
  /** What failed, in the user's words ("panel Defects today"). */
  what: string;
  /** Changing it (new data, another route) gives the children another try. */
  resetKey?: unknown;
  children: ReactNode;
}

interface State {
  error: Error | null;
  resetKey: unknown;
}

export class ErrorBoundary extends Component<Props, State> {
  state: State = { error: null, resetKey: this.props.resetKey };

  static getDerivedStateFromError(error: Error): Partial<State> {
    return { error };
  }

  static getDerivedStateFromProps(props: Props, state: State): Partial<State> | null {
    return props.resetKey !== state.resetKey ? { error: null, resetKey: props.resetKey } : null;
  }

  componentDidCatch(error: Error, info: ErrorInfo): void {
    console.warn(`${this.props.what} failed to render`, error, info.componentStack);
  }

  render() {
    if (this.state.error) {
      return <Alert severity="warning">{i18n.t("common.cannotShow", { what: this.props.what, error: this.state.error.message })}</Alert>;
    }
    return this.props.children;
  }
}
